public class Calc {
    // Every test fails: the class cannot be initialised.
    static final int[] TABLE = new int[-1];

    public static int add(int a, int b) {
        return a + b;
    }

    public static int multiply(int a, int b) {
        return a * b;
    }

    public static int factorial(int n) {
        return TABLE[n];
    }
}
