/* Force-included (-include) into the tests of the tsan variant, whose library is a TM_PREFIX
 * build: the tests' calls of the C allocation API go to tinymalloc_malloc and the rest, while
 * libc and ThreadSanitizer's runtime keep the standard names. Defined before any system header
 * so their declarations are renamed the same way. */
#ifndef TM_PREFIX_H
#define TM_PREFIX_H
#define TM_PREFIX 1
#define malloc tinymalloc_malloc
#define free tinymalloc_free
#define cfree tinymalloc_cfree
#define calloc tinymalloc_calloc
#define realloc tinymalloc_realloc
#define reallocarray tinymalloc_reallocarray
#define posix_memalign tinymalloc_posix_memalign
#define aligned_alloc tinymalloc_aligned_alloc
#define memalign tinymalloc_memalign
#define valloc tinymalloc_valloc
#define pvalloc tinymalloc_pvalloc
#define malloc_usable_size tinymalloc_malloc_usable_size
#define malloc_trim tinymalloc_malloc_trim
#endif
