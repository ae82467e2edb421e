import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class CalcTest {
    @Test(timeout = 2000)
    @Points(2)
    public void add() {
        assertEquals(5, Calc.add(2, 3));
        assertEquals(-1, Calc.add(2, -3));
    }

    @Test(timeout = 2000)
    @Points(2)
    public void multiply() {
        assertEquals(6, Calc.multiply(2, 3));
        assertEquals(0, Calc.multiply(0, 7));
    }

    @Test(timeout = 2000)
    @Points(value = 3, visibility = "after_due_date")
    public void factorial() {
        assertEquals(1, Calc.factorial(0));
        assertEquals(120, Calc.factorial(5));
    }
}
