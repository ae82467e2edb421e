public class Calc {
    public static int add(int a, int b) {
        return a + b;
    }

    public static int multiply(int a, int b) {
        return a * b;
    }

    // Never returns for n > 0.
    public static int factorial(int n) {
        int result = 1;
        while (n > 0) {
            result = result * 3 + n;
        }
        return result;
    }
}
