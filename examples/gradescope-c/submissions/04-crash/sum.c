#include <stdio.h>

int main(void) {
    int *nothing = NULL;
    printf("%d\n", *nothing);
    return 0;
}
