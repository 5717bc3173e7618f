/* fuzz-payload-v3-binary.c: libFuzzer target for v3 binary (XHR2) payloads
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  fuzz_payload (ENGINE_IO_PAYLOAD_V3_BINARY, data, size);
  return 0;
}
