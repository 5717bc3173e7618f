/* fuzz-payload-v3-text.c: libFuzzer target for v3 text payloads (<len>:<packet>)
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  fuzz_payload (ENGINE_IO_PAYLOAD_V3_TEXT, data, size);
  return 0;
}
