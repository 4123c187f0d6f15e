#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer). SwiftPM makes an
// executable target's `<Module>_main` the program's `main` (--defsym), which replaces
// libFuzzer's own main; each target's `<Module>_main` calls this driver instead.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
