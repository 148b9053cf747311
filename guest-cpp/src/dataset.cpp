#include "dataset.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace guest {
namespace {

/// Closes a FILE* on scope exit.
struct File {
    std::FILE* f = nullptr;
    explicit File(std::FILE* f) : f(f) {}
    ~File() {
        if (f) std::fclose(f);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

float to_feature(double v) {
    float f = static_cast<float>(v);
    return f == 0.0f ? 0.0f : f;  // -0.0 becomes +0.0
}

/// Reads one line (without '\n') into `line`; false at end of file.
bool read_line(std::FILE* f, std::string& line) {
    line.clear();
    char chunk[4096];
    bool any = false;
    while (std::fgets(chunk, sizeof chunk, f)) {
        any = true;
        std::size_t n = std::strlen(chunk);
        if (n > 0 && chunk[n - 1] == '\n') {
            line.append(chunk, n - 1);
            return true;
        }
        line.append(chunk, n);
    }
    return any;
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool blank_line(const std::string& line) {
    for (char c : line)
        if (!is_blank(c)) return false;
    return true;
}

std::size_t count_fields(const std::string& line) {
    std::size_t n = 1;
    for (char c : line)
        if (c == ',') ++n;
    return n;
}

Expected<Dataset> load_csv(const std::string& path, std::uint32_t features_hint) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file.f) return fail(path, std::string("cannot open: ") + std::strerror(errno));
    std::string line;
    std::uint64_t line_no = 0;
    // Header: the first line, which must name the columns.
    if (!read_line(file.f, line) || blank_line(line))
        return fail_line(path, 1, "the first line must be a header naming the columns, but it is empty");
    line_no = 1;
    const std::size_t columns = count_fields(line);
    Dataset d;
    bool with_target = true;
    if (features_hint != 0 && columns == features_hint) {
        with_target = false;
    } else if (features_hint != 0 && columns != std::size_t(features_hint) + 1) {
        return fail_line(path, line_no,
                         "has " + std::to_string(columns) + " columns; the model needs " +
                             std::to_string(features_hint) + " features (+1 target column)");
    } else if (columns < 2) {
        return fail_line(path, line_no, "needs at least 2 columns (features, then the target)");
    }
    if (columns - (with_target ? 1 : 0) > std::numeric_limits<std::uint32_t>::max())
        return fail_line(path, line_no, "too many columns");
    d.features = static_cast<std::uint32_t>(columns - (with_target ? 1 : 0));
    std::uint64_t rows = 0;
    while (read_line(file.f, line)) {
        ++line_no;
        if (blank_line(line)) continue;
        const std::size_t found = count_fields(line);
        if (found != columns) {
            return fail_line(path, line_no,
                             "has " + std::to_string(found) + " fields but the header has " +
                                 std::to_string(columns) + "; every row needs " + std::to_string(columns));
        }
        std::size_t col = 0;
        const char* p = line.data();
        const char* end = p + line.size();
        while (true) {
            const char* comma = static_cast<const char*>(std::memchr(p, ',', std::size_t(end - p)));
            const char* field_end = comma ? comma : end;
            const char* a = p;
            const char* b = field_end;
            while (a < b && is_blank(*a)) ++a;
            while (b > a && is_blank(b[-1])) --b;
            double v = 0;
            if (!parse_number(a, b, v)) {
                return fail_line(path, line_no,
                                 "column " + std::to_string(col + 1) + ": `" + std::string(a, b) +
                                     "` is not a finite decimal number");
            }
            if (with_target && col + 1 == columns)
                d.y.push_back(v);
            else
                d.x.push_back(to_feature(v));
            ++col;
            if (!comma) break;
            p = comma + 1;
        }
        ++rows;
        if (rows > std::numeric_limits<std::uint32_t>::max())
            return fail_line(path, line_no, "more than 4294967295 rows");
    }
    if (std::ferror(file.f)) return fail(path, std::string("read error: ") + std::strerror(errno));
    if (rows == 0) return fail(path, "has a header but no data rows");
    d.rows = static_cast<std::uint32_t>(rows);
    return d;
}

/// Finds `'key':` in a .npy header dict and returns the text after it.
const char* npy_field(const std::string& header, const char* key) {
    std::string k1 = std::string("'") + key + "'";
    std::size_t at = header.find(k1);
    if (at == std::string::npos) return nullptr;
    at = header.find(':', at + k1.size());
    if (at == std::string::npos) return nullptr;
    const char* p = header.c_str() + at + 1;
    while (*p == ' ') ++p;
    return p;
}

Expected<Dataset> load_npy(const std::string& path, std::uint32_t features_hint) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file.f) return fail(path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char magic[8];
    if (std::fread(magic, 1, 8, file.f) != 8 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        return fail(path, "not a .npy file (bad magic)");
    std::uint32_t header_len = 0;
    if (magic[6] == 1) {
        unsigned char l[2];
        if (std::fread(l, 1, 2, file.f) != 2) return fail(path, "truncated .npy header");
        header_len = l[0] | (std::uint32_t(l[1]) << 8);
    } else if (magic[6] == 2 || magic[6] == 3) {
        unsigned char l[4];
        if (std::fread(l, 1, 4, file.f) != 4) return fail(path, "truncated .npy header");
        header_len = l[0] | (std::uint32_t(l[1]) << 8) | (std::uint32_t(l[2]) << 16) | (std::uint32_t(l[3]) << 24);
    } else {
        return fail(path, "unsupported .npy version " + std::to_string(magic[6]) + " (1, 2 or 3 expected)");
    }
    if (header_len > (1u << 20)) return fail(path, ".npy header is implausibly large");
    std::string header(header_len, '\0');
    if (std::fread(&header[0], 1, header_len, file.f) != header_len) return fail(path, "truncated .npy header");
    const char* descr = npy_field(header, "descr");
    const char* fortran = npy_field(header, "fortran_order");
    const char* shape = npy_field(header, "shape");
    if (!descr || !fortran || !shape) return fail(path, ".npy header lacks descr, fortran_order or shape");
    std::size_t width;
    if (std::strncmp(descr, "'<f4'", 5) == 0)
        width = 4;
    else if (std::strncmp(descr, "'<f8'", 5) == 0)
        width = 8;
    else
        return fail(path, ".npy dtype must be '<f4' or '<f8'");
    if (std::strncmp(fortran, "False", 5) != 0) return fail(path, ".npy array must be C order (fortran_order False)");
    if (*shape != '(') return fail(path, ".npy shape is malformed");
    std::uint64_t dims[3] = {0, 0, 0};
    int ndim = 0;
    const char* p = shape + 1;
    while (true) {
        while (*p == ' ') ++p;
        if (*p == ')') break;
        if (!is_digit(*p) || ndim == 3) return fail(path, ".npy shape is malformed");
        std::uint64_t v = 0;
        while (is_digit(*p)) {
            if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return fail(path, ".npy shape overflows");
            v = v * 10 + std::uint64_t(*p - '0');
            ++p;
        }
        dims[ndim++] = v;
        while (*p == ' ') ++p;
        if (*p == ',') ++p;
    }
    if (ndim != 2) return fail(path, ".npy array must be 2-D (rows, columns)");
    const std::uint64_t rows = dims[0], columns = dims[1];
    if (rows == 0) return fail(path, "has no rows");
    if (rows > std::numeric_limits<std::uint32_t>::max()) return fail(path, "more than 4294967295 rows");
    Dataset d;
    bool with_target = true;
    if (features_hint != 0 && columns == features_hint) {
        with_target = false;
    } else if (features_hint != 0 && columns != std::uint64_t(features_hint) + 1) {
        return fail(path, "has " + std::to_string(columns) + " columns; the model needs " +
                              std::to_string(features_hint) + " features (+1 target column)");
    } else if (columns < 2) {
        return fail(path, "needs at least 2 columns (features, then the target)");
    }
    if (columns > std::numeric_limits<std::uint32_t>::max()) return fail(path, "too many columns");
    d.rows = static_cast<std::uint32_t>(rows);
    d.features = static_cast<std::uint32_t>(columns - (with_target ? 1 : 0));
    d.x.reserve(std::size_t(rows) * d.features);
    if (with_target) d.y.reserve(std::size_t(rows));
    std::vector<unsigned char> row(std::size_t(columns) * width);
    for (std::uint64_t r = 0; r < rows; ++r) {
        if (std::fread(row.data(), 1, row.size(), file.f) != row.size())
            return fail(path, "truncated: expected " + std::to_string(rows) + " rows, found " + std::to_string(r));
        for (std::uint64_t c = 0; c < columns; ++c) {
            double v;
            if (width == 4) {
                std::uint32_t bits = 0;
                for (int i = 0; i < 4; ++i) bits |= std::uint32_t(row[c * 4 + i]) << (8 * i);
                float f;
                std::memcpy(&f, &bits, 4);
                v = f;
            } else {
                std::uint64_t bits = 0;
                for (int i = 0; i < 8; ++i) bits |= std::uint64_t(row[c * 8 + i]) << (8 * i);
                std::memcpy(&v, &bits, 8);
            }
            if (!std::isfinite(v))
                return fail(path, "row " + std::to_string(r + 1) + " column " + std::to_string(c + 1) +
                                      " is not a finite number");
            if (with_target && c + 1 == columns)
                d.y.push_back(v);
            else
                d.x.push_back(to_feature(v));
        }
    }
    if (std::fgetc(file.f) != EOF) return fail(path, "has bytes after the array data");
    return d;
}

bool ends_with(const std::string& s, const char* suffix) {
    std::size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

bool parse_number(const char* begin, const char* end, double& out) {
    const char* p = begin;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    std::size_t int_digits = 0, frac_digits = 0;
    while (p < end && is_digit(*p)) ++p, ++int_digits;
    if (p < end && *p == '.') {
        ++p;
        while (p < end && is_digit(*p)) ++p, ++frac_digits;
    }
    if (int_digits + frac_digits == 0) return false;
    if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < end && (*p == '+' || *p == '-')) ++p;
        std::size_t exp_digits = 0;
        while (p < end && is_digit(*p)) ++p, ++exp_digits;
        if (exp_digits == 0) return false;
    }
    if (p != end) return false;
    std::string text(begin, end);
    errno = 0;
    double v = std::strtod(text.c_str(), nullptr);
    if (std::isinf(v)) return false;
    out = v;
    return true;
}

Expected<Dataset> load_dataset(const std::string& path, std::uint32_t features_hint) {
    if (ends_with(path, ".npy")) return load_npy(path, features_hint);
    return load_csv(path, features_hint);
}

}  // namespace guest
