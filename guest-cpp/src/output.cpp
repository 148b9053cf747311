#include "wasi_gpu/output.hpp"

#include <unistd.h>
#include <cerrno>
#include <vector>

namespace wasi_gpu::forest {

void emit_text(int fd, const std::string& text) {
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // nowhere left to report an output failure
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

void emit(int fd, const char* format, ...) {
    char small[512];
    va_list args;
    va_start(args, format);
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0) {
        va_end(copy);
        return;
    }
    if (static_cast<std::size_t>(n) < sizeof small) {
        va_end(copy);
        emit_text(fd, std::string(small, static_cast<std::size_t>(n)));
        return;
    }
    std::vector<char> big(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(big.data(), big.size(), format, copy);
    va_end(copy);
    emit_text(fd, std::string(big.data(), static_cast<std::size_t>(n)));
}

}  // namespace wasi_gpu::forest
