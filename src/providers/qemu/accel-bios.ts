/**
 * A 64 KiB "BIOS" that is nothing but a timed busy loop, for the accelerator probe. Booting it
 * measures how fast the accelerator runs guest code, which a /dev/kvm that merely opens does not
 * tell: on some hosts (e.g. a PVM backend) KVM works but runs guests far slower than TCG.
 *
 * QEMU maps a 64 KiB BIOS image at 0xF0000-0xFFFFF (and below 4 GiB); the CPU starts in real
 * mode at F000:FFF0, i.e. image offset 0xFFF0, 16 bytes before the end.
 */

export const ACCEL_BIOS_SIZE = 64 * 1024;
/** Offset of the reset vector inside the image (physical 0xFFFF0). */
export const RESET_VECTOR_OFFSET = 0xfff0;
/** I/O port of the `isa-debug-exit` device the loop writes to when done. */
export const DEBUG_EXIT_PORT = 0xf4;
/**
 * What the loop writes to the debug-exit port. isa-debug-exit makes QEMU exit with status
 * (value << 1) | 1. Not 0: that would give status 1, which QEMU also uses for its own errors
 * (bad option, unreadable BIOS), so success would be indistinguishable from failure.
 */
export const PROBE_EXIT_VALUE = 0x2a;
/** The exit status QEMU returns when the probe loop finished: (0x2a << 1) | 1 = 85. */
export const PROBE_EXIT_STATUS = (PROBE_EXIT_VALUE << 1) | 1;

/**
 * Real-mode code placed at offset 0 (F000:0000):
 *   cli
 *   mov ecx, iterations       ; 66 B9 imm32
 * l: dec ecx                  ; 66 49
 *   jnz l                     ; 75 FC
 *   mov al, 0x2a              ; B0 2A
 *   out 0xf4, al              ; E6 F4   -> QEMU exits with status (0x2a << 1) | 1 = 85
 * h: hlt                      ; F4      (not reached unless the debug-exit device is missing)
 *   jmp h                     ; EB FD
 */
function loopCode(iterations: number): Buffer {
  const code = Buffer.from([0xfa, 0x66, 0xb9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xfc, 0xb0, PROBE_EXIT_VALUE, 0xe6, DEBUG_EXIT_PORT, 0xf4, 0xeb, 0xfd]);
  code.writeUInt32LE(iterations, 3);
  return code;
}

/** `jmp far F000:0000`: from the reset vector back to the loop at the start of the image. */
export const RESET_VECTOR_CODE: readonly number[] = [0xea, 0x00, 0x00, 0x00, 0xf0];

/**
 * Builds the image. `iterations` must be in 1..2^32-1 (`dec ecx` with ecx = 0 would wrap and
 * loop 2^32 times). Unused bytes are `hlt` so a stray jump stops instead of running garbage.
 */
export function buildAccelBios(iterations: number): Buffer {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0xffffffff) {
    throw new RangeError(`iterations must be an integer in 1..2^32-1, got ${iterations}`);
  }
  const image = Buffer.alloc(ACCEL_BIOS_SIZE, 0xf4);
  loopCode(iterations).copy(image, 0);
  Buffer.from(RESET_VECTOR_CODE).copy(image, RESET_VECTOR_OFFSET);
  return image;
}
