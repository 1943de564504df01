/*
 * A stand-in for Windows' bcryptprimitives.dll, for running knock.exe under Wine 8.0
 * (Debian 12), which lacks that DLL. Rust's standard library imports one function from it,
 * ProcessPrng, for random numbers (HashMap seeds, our source ports and sequence numbers).
 * This one fills the buffer from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Built by the Windows e2e test with MinGW:
 *   x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c bcryptprimitives.def
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
