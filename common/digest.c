/*
 * common/digest.c — see digest.h. The only use of libcrypto's digest API outside auth/.
 */
#include "common/digest.h"

#include <string.h>

#include <openssl/evp.h>

int cm_sha256(const void *data, size_t len, uint8_t out[CM_SHA256_LEN])
{
	unsigned int n = CM_SHA256_LEN;
	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != CM_SHA256_LEN) {
		memset(out, 0, CM_SHA256_LEN);
		return -1;
	}
	return 0;
}
