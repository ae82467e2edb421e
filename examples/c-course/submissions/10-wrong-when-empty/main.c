#include <stdio.h>

int main(void) {
    long n, x, sum = 0, max = 0;
    if (scanf("%ld", &n) != 1) return 1;
    if (n == 0) { printf("nothing\n"); return 0; }
    for (long i = 0; i < n; i++) {
        if (scanf("%ld", &x) != 1) return 1;
        sum += x;
        if (i == 0 || x > max) max = x;
    }
    printf("%ld %ld\n", sum, max);
    return 0;
}
