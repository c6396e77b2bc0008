/* A stand-in for bcryptprimitives.dll under wine 8, which lacks ProcessPrng.
 *
 * Rust's standard library for Windows draws its random numbers (HashMap keys, temporary
 * names) from ProcessPrng and aborts without it, so every test executable would die before
 * main. This forwards to RtlGenRandom (advapi32's SystemFunction036), which wine has. Built
 * and placed in the wine prefix by .ci/wine-runner; never shipped. */
#include <windows.h>

typedef BOOLEAN(WINAPI *rtl_gen_random)(PVOID, ULONG);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    static rtl_gen_random gen;
    if (!gen) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi)
            return FALSE;
        gen = (rtl_gen_random)GetProcAddress(advapi, "SystemFunction036");
        if (!gen)
            return FALSE;
    }
    while (len) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!gen(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
