/*
 * flatten.c — nn.Flatten: a sample's (C, H, W) read as C·H·W features in
 * that order. It moves nothing: its input buffer, laid out so already, is
 * its output, so it has no code, in training or in inference C.
 */
#include "gen.h"

const LayerUnit unit_flatten = {
  .alias = 1,
};
