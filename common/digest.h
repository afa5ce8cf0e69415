/*
 * common/digest.h — SHA-256 for the rooms that must not depend on a crypto library themselves
 * (policy/ keeps to libc and jansson; its ETag digest comes from here). Implemented with libcrypto.
 */
#ifndef POLLGATE_COMMON_DIGEST_H
#define POLLGATE_COMMON_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define CM_SHA256_LEN 32

/* SHA-256 of len bytes into out. Returns 0, or -1 if libcrypto failed (allocation); out is then zeroed. */
int cm_sha256(const void *data, size_t len, uint8_t out[CM_SHA256_LEN]) __attribute__((warn_unused_result));

#endif
