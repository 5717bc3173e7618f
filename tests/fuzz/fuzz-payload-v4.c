/* fuzz-payload-v4.c: libFuzzer target for v4 polling payloads (packets joined by 0x1e)
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  fuzz_payload (ENGINE_IO_PAYLOAD_V4, data, size);
  return 0;
}
