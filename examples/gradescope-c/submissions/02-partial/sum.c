#include <stdio.h>

/* Reads digits only: a minus sign is skipped. */
int main(void) {
    unsigned long total = 0, n = 0;
    int c, in = 0;
    while ((c = getchar()) != EOF) {
        if (c >= '0' && c <= '9') { n = n * 10 + (c - '0'); in = 1; }
        else if (in) { total += n; n = 0; in = 0; }
    }
    if (in) total += n;
    printf("%lu\n", total);
    return 0;
}
