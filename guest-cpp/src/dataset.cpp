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
    explicit LineReader(std::FILE* f) : f_(f), buf_(1 << 16) {}
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
    std::vector<char> buf(1 << 16);
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

Expected<Dataset> load_csv(const std::string& path, std::uint32_t features_hint) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file.f) return fail(path, open_error(errno));
    if (const std::uint64_t at = first_nul_line(file.f))
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
                             "has " + std::to_string(found) + " fields but the header has " +
                                 std::to_string(columns) + "; every row needs " + std::to_string(columns));
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
            const std::string field = "field " + std::to_string(col + 1) + " (column `" + names[col] + "`)";
            if (a == b) return fail_line(path, line_no, field + " is empty; every field must be a number");
            if (!is_number(a, b))
                return fail_line(path, line_no,
                                 field + " is `" + show(a, b) + "`, not a number (NaN and inf are not allowed)");
            double v = 0;
            if (!parse_number(a, b, v))
                return fail_line(path, line_no, field + " `" + std::string(a, b) + "` overflows f64");
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

Expected<Dataset> load_npy(const std::string& path, std::uint32_t features_hint) {
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
    if (rows == 0) return fail(path, "has no data rows (shape has 0 rows); it needs at least one row");
    if (columns > std::numeric_limits<std::uint32_t>::max()) return fail(path, "too many columns");
    d.rows = static_cast<std::uint32_t>(rows);
    d.features = static_cast<std::uint32_t>(columns - (with_target ? 1 : 0));
    d.x.reserve(std::size_t(rows) * d.features);
    if (with_target) d.y.reserve(std::size_t(rows));
    std::vector<unsigned char> row(std::size_t(columns) * width);
    std::vector<double> row_values(static_cast<std::size_t>(columns));
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
            const std::string place = "row " + std::to_string(r + 1) + ", column " + std::to_string(c + 1) + ": ";
            if (std::isnan(v)) return fail(path, place + "NaN is not allowed");
            if (std::isinf(v)) return fail(path, place + "infinite values are not allowed");
            row_values[c] = v;
        }
        // Like the Rust guest: a NaN/inf anywhere on the row is reported before an f32 overflow.
        for (std::uint64_t c = 0; c < columns; ++c) {
            const double v = row_values[c];
            if (with_target && c + 1 == columns) {
                d.y.push_back(to_target(v));
                continue;
            }
            float f;
            if (!to_feature(v, f))
                return fail(path, "row " + std::to_string(r + 1) + ", column " + std::to_string(c + 1) + ": " +
                                      f32_overflow(v));
            d.x.push_back(f);
        }
    }
    if (std::fgetc(file.f) != EOF) return fail(path, "has bytes after the array data");
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
    if (ends_with_ignore_case(path, ".npy")) return load_npy(path, features_hint);
    return load_csv(path, features_hint);
}

}  // namespace guest
