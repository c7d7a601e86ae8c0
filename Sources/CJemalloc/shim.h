// The one jemalloc entry point the server calls. jemalloc.h itself is not
// included: it redeclares malloc/free, which would clash with Glibc's in Swift.
// Linking the library is what matters — its malloc then serves the process.
#include <stddef.h>

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
