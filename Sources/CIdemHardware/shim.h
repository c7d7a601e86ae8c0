// CPU instructions Swift has no name for. Header only: nothing to link.
#ifndef IDEM_HARDWARE_SHIM_H
#define IDEM_HARDWARE_SHIM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <cpuid.h>

// SSE4.2's crc32 instruction computes CRC-32C (Castagnoli).
static inline int idem_crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

// One CRC-32C update step over `length` bytes, without the initial and final
// inversions (the caller keeps those), exactly as the table-driven code does.
__attribute__((target("sse4.2")))
static inline uint32_t idem_crc32c_update(uint32_t state, const void *data, size_t length) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint64_t crc = state;
    while (length >= 8) {
        uint64_t word;
        __builtin_memcpy(&word, bytes, 8);
        crc = __builtin_ia32_crc32di(crc, word);
        bytes += 8;
        length -= 8;
    }
    uint32_t crc32 = (uint32_t)crc;
    while (length > 0) {
        crc32 = __builtin_ia32_crc32qi(crc32, *bytes);
        bytes += 1;
        length -= 1;
    }
    return crc32;
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)

static inline int idem_crc32c_hardware_available(void) { return 1; }

static inline uint32_t idem_crc32c_update(uint32_t state, const void *data, size_t length) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint32_t crc = state;
    while (length >= 8) {
        uint64_t word;
        __builtin_memcpy(&word, bytes, 8);
        crc = __builtin_arm_crc32cd(crc, word);
        bytes += 8;
        length -= 8;
    }
    while (length > 0) {
        crc = __builtin_arm_crc32cb(crc, *bytes);
        bytes += 1;
        length -= 1;
    }
    return crc;
}

#else

static inline int idem_crc32c_hardware_available(void) { return 0; }
static inline uint32_t idem_crc32c_update(uint32_t state, const void *data, size_t length) {
    (void)data; (void)length;
    return state;
}

#endif

// Starts loading the cache line holding `address` (a hint: never faults,
// whatever the address).
static inline void idem_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
