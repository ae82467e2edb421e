import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        int n = in.nextInt();
        long sum = 0, max = Long.MIN_VALUE;
        for (int i = 0; i < n; i++) {
            long x = in.nextLong();
            sum += x;
            max = Math.max(max, x);
        }
        System.out.println(sum + " " + max);
    }
}
