/*
 * Which sanitizers the runtime is built with (gcc and clang spell it
 * differently): WEFT__ASAN, WEFT__TSAN.
 */
#ifndef WEFT_RUNTIME_SANITIZE_H
#define WEFT_RUNTIME_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

#endif
