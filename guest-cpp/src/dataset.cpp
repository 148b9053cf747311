#include "wasi_gpu/dataset.hpp"

#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "transfer.hpp"

namespace wasi_gpu::forest {
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

/// Bytes per fread of a CSV file (each a WASI read call).
constexpr std::size_t CSV_BLOCK_BYTES = 1 << 20;

/// 10^0 .. 10^22, every one exactly representable as a double.
constexpr double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                              1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/// Clinger's fast path for a string that is_number accepted: when its significant digits
/// form an integer m <= 2^53 and its decimal exponent e is in [-22, 22], m and 10^|e| are
/// exact doubles and one IEEE multiplication or division gives the correctly rounded value
/// (what strtod returns). False when the fast path does not apply.
bool parse_fast(const char* p, const char* end, double& out) {
    bool negative = false;
    if (*p == '+' || *p == '-') negative = *p++ == '-';
    std::uint64_t m = 0;
    int digits = 0;  // significant digits in m
    long scale = 0;  // m * 10^scale is the mantissa's value
    bool fraction = false;
    for (; p < end && (is_digit(*p) || *p == '.'); ++p) {
        if (*p == '.') {
            fraction = true;
            continue;
        }
        if (m == 0 && *p == '0') {  // a leading zero
            if (fraction) --scale;
            continue;
        }
        if (digits == 19) return false;  // more digits than a u64 holds
        m = m * 10 + std::uint64_t(*p - '0');
        ++digits;
        if (fraction) --scale;
    }
    long exponent = 0;
    if (p < end) {  // 'e' or 'E', then an optionally signed integer
        ++p;
        bool negative_exponent = false;
        if (*p == '+' || *p == '-') negative_exponent = *p++ == '-';
        for (; p < end; ++p) {
            if (exponent > 100000) return false;
            exponent = exponent * 10 + (*p - '0');
        }
        if (negative_exponent) exponent = -exponent;
    }
    const long e = scale + exponent;
    double v;
    if (m == 0) {
        v = 0.0;
    } else {
        if (m > (std::uint64_t(1) << 53) || e < -22 || e > 22) return false;
        v = static_cast<double>(m);
        v = e < 0 ? v / POW10[-e] : v * POW10[e];
    }
    out = negative ? -v : v;
    return true;
}

/// `v as f32` with -0.0 as +0.0; false when a finite f64 overflows f32 (§1).
bool to_feature(double v, float& out) {
    // Rounding to nearest even overflows exactly from 2^128 - 2^103 (half an ulp above
    // FLT_MAX) on; checked in f64 so that the conversion below is always in range.
    if (std::fabs(v) >= 0x1.ffffffp+127) return false;
    const float f = static_cast<float>(v);  // round to nearest even, like Rust's `as f32`
    out = f == 0.0f ? 0.0f : f;             // -0.0 becomes +0.0
    return true;
}

/// A target as stored: -0.0 becomes +0.0 (§1).
double to_target(double v) { return v == 0.0 ? 0.0 : v; }

/// "value <v> is too large for f32 (magnitude above 3.4e38)", the Rust guest's wording.
std::string f32_overflow(double v) {
    return "value " + rust_display(v) + " is too large for f32 (magnitude above 3.4e38)";
}

/// Splits a file into lines ('\n' removed) with fread; unlike fgets + strlen, a line is
/// never cut at a NUL byte (first_nul_line refuses those anyway).
class LineReader {
public:
    explicit LineReader(std::FILE* f) : f_(f), buf_(CSV_BLOCK_BYTES) {}
    /// The next line into `line`; false at end of file (or on a read error: see ferror).
    bool next(std::string& line) {
        line.clear();
        bool any = false;
        while (true) {
            if (pos_ == end_) {
                end_ = std::fread(buf_.data(), 1, buf_.size(), f_);
                pos_ = 0;
                if (end_ == 0) return any;
            }
            any = true;
            const char* start = buf_.data() + pos_;
            const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
            if (nl) {
                line.append(start, std::size_t(nl - start));
                pos_ += std::size_t(nl - start) + 1;
                return true;
            }
            line.append(start, end_ - pos_);
            pos_ = end_;
        }
    }

private:
    std::FILE* f_;
    std::vector<char> buf_;
    std::size_t pos_ = 0, end_ = 0;
};

/// The §1 rule: a NUL byte anywhere in a CSV line is an error naming the line. Like the
/// Rust guest, the whole file is checked before anything else is, so the first NUL is
/// reported even when an earlier line has another problem. Returns the 1-based line of
/// the first NUL, 0 when there is none, and leaves the file at its start.
std::uint64_t first_nul_line(std::FILE* f) {
    std::vector<char> buf(CSV_BLOCK_BYTES);
    std::uint64_t line = 1, found = 0;
    std::size_t n;
    while (found == 0 && (n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
        const char* nul = static_cast<const char*>(std::memchr(buf.data(), '\0', n));
        const char* end = nul ? nul : buf.data() + n;
        for (const char* p = buf.data(); (p = static_cast<const char*>(std::memchr(p, '\n', std::size_t(end - p))));
             ++p)
            ++line;
        if (nul) found = line;
    }
    std::rewind(f);  // also clears a read error, which the parse then meets again
    return found;
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

/// The text of a field in a message, shortened to 40 characters like the Rust guest's.
std::string show(const char* a, const char* b) {
    std::size_t chars = 0;
    for (const char* p = a; p < b; ++p) {
        if ((static_cast<unsigned char>(*p) & 0xc0) == 0x80) continue;  // UTF-8 continuation byte
        if (chars == 40) return std::string(a, p) + "...";
        ++chars;
    }
    return std::string(a, b);
}

/// `[+-]?digits[.digits][(e|E)[+-]?digits]` with digits on at least one side of the `.` (§1).
bool is_number(const char* begin, const char* end) {
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
    return p == end;
}

/// "cannot open: ..." in the Rust guest's words.
std::string open_error(int err) {
    if (err == ENOENT) return "cannot open: no such file (paths are relative to the directory given with --dir)";
    return std::string("cannot read: ") + std::strerror(err);
}

/// With `header_only`, stops after the checks that precede the rows (check_dataset).
Expected<Dataset> load_csv(const std::string& path, std::uint32_t features_hint, bool header_only) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file.f) return fail(path, open_error(errno));
    if (const std::uint64_t at = header_only ? 0 : first_nul_line(file.f))
        return fail_line(path, at, "contains a NUL byte; a CSV file must be text");
    LineReader lines(file.f);
    std::string line;
    std::uint64_t line_no = 0;
    // Header: the first line, which must name the columns.
    if (!lines.next(line) || blank_line(line))
        return fail_line(path, 1, "the first line must be a header naming the columns, but it is empty");
    line_no = 1;
    const std::size_t columns = count_fields(line);
    // Column names (trimmed), for messages about a field.
    std::vector<std::string> names;
    for (std::size_t at = 0;;) {
        const std::size_t comma = line.find(',', at);
        const char* a = line.data() + at;
        const char* b = line.data() + (comma == std::string::npos ? line.size() : comma);
        while (a < b && is_blank(*a)) ++a;
        while (b > a && is_blank(b[-1])) --b;
        names.emplace_back(a, b);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    Dataset d;
    bool with_target = true;
    if (features_hint != 0 && columns == features_hint) {
        with_target = false;
    } else if (features_hint != 0 && columns != std::size_t(features_hint) + 1) {
        return fail_line(path, line_no,
                         "the header has " + std::to_string(columns) + " columns but the model was trained on " +
                             std::to_string(features_hint) + " features; expected " + std::to_string(features_hint) +
                             " columns (no target) or " + std::to_string(std::uint64_t(features_hint) + 1) +
                             " (features then target)");
    } else if (columns < 2) {
        return fail_line(path, line_no,
                         "the header has " + std::to_string(columns) +
                             " column; training data needs at least one feature column and the target (last) column");
    }
    if (header_only) return d;
    if (columns - (with_target ? 1 : 0) > std::numeric_limits<std::uint32_t>::max())
        return fail_line(path, line_no, "too many columns");
    d.features = static_cast<std::uint32_t>(columns - (with_target ? 1 : 0));
    std::uint64_t rows = 0;
    std::vector<double> values;
    values.reserve(columns);
    while (lines.next(line)) {
        ++line_no;
        if (blank_line(line)) continue;
        const std::size_t found = count_fields(line);
        if (found != columns) {
            return fail_line(path, line_no,
                             "has " + std::to_string(found) + " fields but the header has " + std::to_string(columns) +
                                 "; every row needs " + std::to_string(columns));
        }
        // Every field is parsed before any is converted to f32, so a bad field is reported
        // before an f32 overflow earlier on the line (as the Rust guest does).
        values.clear();
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
                const std::string field = "field " + std::to_string(col + 1) + " (column `" + names[col] + "`)";
                if (a == b) return fail_line(path, line_no, field + " is empty; every field must be a number");
                if (!is_number(a, b))
                    return fail_line(path, line_no,
                                     field + " is `" + show(a, b) + "`, not a number (NaN and inf are not allowed)");
                return fail_line(path, line_no, field + " `" + std::string(a, b) + "` overflows f64");
            }
            values.push_back(v);
            ++col;
            if (!comma) break;
            p = comma + 1;
        }
        for (std::size_t c = 0; c < columns; ++c) {
            if (with_target && c + 1 == columns) {
                d.y.push_back(to_target(values[c]));
                continue;
            }
            float f;
            if (!to_feature(values[c], f))
                return fail_line(path, line_no, "field " + std::to_string(c + 1) + ": " + f32_overflow(values[c]));
            d.x.push_back(f);
        }
        ++rows;
        if (rows > std::numeric_limits<std::uint32_t>::max())
            return fail_line(path, line_no, "more than 4294967295 rows");
    }
    if (std::ferror(file.f)) return fail(path, std::string("read error: ") + std::strerror(errno));
    if (rows == 0) return fail(path, "has no data rows (only a header); it needs at least one row");
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

/// Row `r` (0-based) of a .npy block at `src` holds a NaN, an infinity or a value that
/// overflows f32: the message for the first such problem, as the Rust guest words it
/// (a NaN or infinity anywhere on the row is reported before an f32 overflow).
std::string npy_row_error(const unsigned char* src, std::size_t width, std::uint64_t columns, bool with_target,
                          std::uint64_t r) {
    auto value = [&](std::uint64_t c) {
        if (width == 4) {
            float f;
            std::memcpy(&f, src + c * 4, 4);
            return double(f);
        }
        double v;
        std::memcpy(&v, src + c * 8, 8);
        return v;
    };
    auto place = [&](std::uint64_t c) {
        return "row " + std::to_string(r + 1) + ", column " + std::to_string(c + 1) + ": ";
    };
    for (std::uint64_t c = 0; c < columns; ++c) {
        const double v = value(c);
        if (std::isnan(v)) return place(c) + "NaN is not allowed";
        if (std::isinf(v)) return place(c) + "infinite values are not allowed";
    }
    for (std::uint64_t c = 0; c + (with_target ? 1 : 0) < columns; ++c) {
        float f;
        if (!to_feature(value(c), f)) return place(c) + f32_overflow(value(c));
    }
    return place(0) + "invalid value";  // not reached: the caller found a problem on this row
}

/// With `header_only`, stops after the checks that precede the rows (check_dataset).
Expected<Dataset> load_npy(const std::string& path, std::uint32_t features_hint, bool header_only) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file.f) return fail(path, open_error(errno));
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
    if (ndim != 2)
        return fail(path, "the array has " + std::to_string(ndim) +
                              " dimensions; it must be 2-D (rows x columns, target last)");
    const std::uint64_t rows = dims[0], columns = dims[1];
    if (rows > std::numeric_limits<std::uint32_t>::max()) return fail(path, "more than 4294967295 rows");
    Dataset d;
    bool with_target = true;
    if (features_hint != 0 && columns == features_hint) {
        with_target = false;
    } else if (features_hint != 0 && columns != std::uint64_t(features_hint) + 1) {
        return fail(path, "the array has " + std::to_string(columns) + " columns but the model was trained on " +
                              std::to_string(features_hint) + " features; expected " + std::to_string(features_hint) +
                              " columns (no target) or " + std::to_string(std::uint64_t(features_hint) + 1) +
                              " (features then target)");
    } else if (columns < 2) {
        return fail(path, "the array has " + std::to_string(columns) +
                              " column; training data needs at least one feature column and the target (last) column");
    }
    if (header_only) return d;
    if (rows == 0) return fail(path, "has no data rows (shape has 0 rows); it needs at least one row");
    if (columns > std::numeric_limits<std::uint32_t>::max()) return fail(path, "too many columns");
    const std::uint64_t row_bytes = columns * width;
    // The file must hold exactly rows x columns values after the header: checked from its
    // size before anything is allocated or read.
    struct stat st;
    if (::fstat(::fileno(file.f), &st) != 0) return fail(path, std::string("cannot read: ") + std::strerror(errno));
    const std::uint64_t data_start = 8 + (magic[6] == 1 ? 2 : 4) + std::uint64_t(header_len);
    const std::uint64_t have = std::uint64_t(st.st_size) > data_start ? std::uint64_t(st.st_size) - data_start : 0;
    if (rows > std::numeric_limits<std::uint64_t>::max() / row_bytes) return fail(path, "the .npy shape is too large");
    const std::uint64_t data_bytes = rows * row_bytes;
    if (have < data_bytes)
        return fail(path, "truncated: the shape needs " + std::to_string(data_bytes) + " data bytes but the file has " +
                              std::to_string(have));
    if (have > data_bytes)
        return fail(path,
                    "has " + std::to_string(have - data_bytes) + " bytes after the array data; the file is corrupt");
    d.rows = static_cast<std::uint32_t>(rows);
    d.features = static_cast<std::uint32_t>(columns - (with_target ? 1 : 0));
    const std::uint64_t values = rows * d.features;
    if (values > std::numeric_limits<std::size_t>::max() / sizeof(float))
        return fail(path, std::to_string(rows) + " rows x " + std::to_string(d.features) +
                              " features do not fit in the guest's 32-bit memory");
    // One copy of the data in guest memory: the values go straight from a block of whole
    // rows (at most TRANSFER_CHUNK_BYTES, read with one fread) to their place in x and y.
    d.x.resize(static_cast<std::size_t>(values));
    if (with_target) d.y.resize(static_cast<std::size_t>(rows));
    const std::uint64_t block_rows = std::max<std::uint64_t>(1, std::min(rows, TRANSFER_CHUNK_BYTES / row_bytes));
    std::vector<unsigned char> block(static_cast<std::size_t>(block_rows * row_bytes));
    const std::size_t features = d.features;
    float* x = d.x.data();
    double* y = d.y.data();
    for (std::uint64_t r0 = 0; r0 < rows; r0 += block_rows) {
        const std::uint64_t n = std::min(block_rows, rows - r0);
        const std::size_t want = static_cast<std::size_t>(n * row_bytes);
        const std::size_t got = std::fread(block.data(), 1, want, file.f);
        if (got != want) {
            if (std::ferror(file.f)) return fail(path, std::string("read error: ") + std::strerror(errno));
            return fail(path, "truncated: expected " + std::to_string(rows) + " rows, found " +
                                  std::to_string(r0 + got / row_bytes));
        }
        for (std::uint64_t i = 0; i < n; ++i) {
            const unsigned char* src = block.data() + i * row_bytes;
            float* out = x + (r0 + i) * features;
            // Converted as read; a row with a NaN, an infinity or (for <f8) a value
            // overflowing f32 is then re-examined by npy_row_error for the message.
            bool bad = false;
            if (width == 4) {
                for (std::size_t c = 0; c < features; ++c) {
                    std::uint32_t bits;
                    std::memcpy(&bits, src + c * 4, 4);
                    bad |= (bits & 0x7f800000u) == 0x7f800000u;
                    float f;
                    std::memcpy(&f, &bits, 4);
                    out[c] = f == 0.0f ? 0.0f : f;  // -0.0 becomes +0.0
                }
                if (with_target) {
                    float t;
                    std::memcpy(&t, src + features * 4, 4);
                    bad |= !std::isfinite(t);
                    y[r0 + i] = to_target(t);
                }
            } else {
                for (std::size_t c = 0; c < features; ++c) {
                    double v;
                    std::memcpy(&v, src + c * 8, 8);
                    bad |= !std::isfinite(v);
                    bad |= !to_feature(v, out[c]);  // false for an f32 overflow
                }
                if (with_target) {
                    double t;
                    std::memcpy(&t, src + features * 8, 8);
                    bad |= !std::isfinite(t);
                    y[r0 + i] = to_target(t);
                }
            }
            if (bad) return fail(path, npy_row_error(src, width, columns, with_target, r0 + i));
        }
    }
    return d;
}

/// True when `s` ends in `suffix` (lower case) compared ASCII case-insensitively.
bool ends_with_ignore_case(const std::string& s, const char* suffix) {
    const std::size_t n = std::strlen(suffix);
    if (s.size() < n) return false;
    for (std::size_t i = 0; i < n; ++i) {
        char c = s[s.size() - n + i];
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
        if (c != suffix[i]) return false;
    }
    return true;
}

}  // namespace

bool parse_number(const char* begin, const char* end, double& out) {
    if (!is_number(begin, end)) return false;
    if (parse_fast(begin, end, out)) return true;
    std::string text(begin, end);
    errno = 0;
    double v = std::strtod(text.c_str(), nullptr);
    if (std::isinf(v)) return false;
    out = v;
    return true;
}

std::string rust_display(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    const std::string sign = std::signbit(v) ? "-" : "";
    const double a = std::fabs(v);
    if (a == 0.0) return sign + "0";
    // The exact decimal expansion (a double has at most 767 significant digits; printf is exact).
    char exact[1024];
    std::snprintf(exact, sizeof exact, "%.780e", a);
    const char* e = std::strchr(exact, 'e');
    std::string all;
    for (const char* q = exact; q < e; ++q)
        if (*q != '.') all += *q;
    const long exact_exp = std::strtol(e + 1, nullptr, 10);
    // The fewest digits, rounded to nearest with ties up (as Rust's shortest formatting
    // does), that read back as `a`.
    std::string digits;
    long exp10 = exact_exp;
    for (std::size_t p = 1; p <= 17; ++p) {
        digits = all.substr(0, p);
        exp10 = exact_exp;
        if (all[p] >= '5') {
            std::size_t i = p;
            while (i > 0 && digits[i - 1] == '9') digits[--i] = '0';
            if (i == 0) {
                digits.insert(digits.begin(), '1');
                digits.pop_back();
                ++exp10;
            } else {
                ++digits[i - 1];
            }
        }
        const std::string text = digits.substr(0, 1) + "." + digits.substr(1) + "e" + std::to_string(exp10);
        if (std::strtod(text.c_str(), nullptr) == a) break;
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const long n = static_cast<long>(digits.size());
    std::string out;
    if (exp10 < 0)
        out = "0." + std::string(std::size_t(-exp10 - 1), '0') + digits;
    else if (n <= exp10 + 1)
        out = digits + std::string(std::size_t(exp10 + 1 - n), '0');
    else
        out = digits.substr(0, std::size_t(exp10 + 1)) + "." + digits.substr(std::size_t(exp10 + 1));
    return sign + out;
}

Expected<Dataset> load_dataset(const std::string& path, std::uint32_t features_hint) {
    if (ends_with_ignore_case(path, ".npy")) return load_npy(path, features_hint, false);
    return load_csv(path, features_hint, false);
}

Expected<void> check_dataset(const std::string& path, std::uint32_t features) {
    auto header = ends_with_ignore_case(path, ".npy") ? load_npy(path, features, true) : load_csv(path, features, true);
    if (!header) return wasi_gpu::Unexpected<Failure>(header.error());
    return {};
}

}  // namespace wasi_gpu::forest
