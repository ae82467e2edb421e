public class Calc {
    public static int add(int a, int b) {
        return a + b;
    }

    public static int multiply(int a, int b) {
        return a * b;
    }

    // Off by one: factorial(0) is 1, not 0.
    public static int factorial(int n) {
        return n <= 1 ? n : n * factorial(n - 1);
    }
}
