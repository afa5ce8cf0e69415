/*
 * common/hex.h — lower-case hexadecimal, the one encoder every room uses (ETags, token-hash log
 * prefixes, escaped bytes in config error messages).
 */
#ifndef POLLGATE_COMMON_HEX_H
#define POLLGATE_COMMON_HEX_H

#include <stddef.h>

/* Writes 2*n lower-case hex digits of the n bytes at `in` into `out`, then a NUL: out holds 2*n+1. */
void cm_hex_encode(const void *in, size_t n, char *out);

#endif
