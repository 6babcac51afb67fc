/* classify.c — reads one 28x28 image, 784 bytes, from stdin and prints its class. */
#include <stdio.h>
#include "digit.h"

int main(void) {
  unsigned char px[MLPC_INPUT];
  if (fread(px, 1, sizeof px, stdin) != sizeof px)
    return 1;
  printf("digit %d\n", mlpc_predict_u8(px, NULL));
  return 0;
}
