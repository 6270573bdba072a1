// Uses what only the C++ runtime has: strings, a vector, a sort, an exception thrown and caught.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>
#ifdef _WIN32
// Spelled as the Windows SDK spells them (code written for MSVC does); mingw-w64 has
// them in lower case, on a case-sensitive file system.
#include <Windows.h>
#include <PowrProf.h>
#endif

extern "C" int corpus_sorted_words(char *out, int size) {
    std::vector<std::string> words = {"pear", "apple", "fig"};
    std::sort(words.begin(), words.end());
    std::string joined;
    for (const auto &word : words) joined += (joined.empty() ? "" : ",") + word;
    try {
        if (joined.size() >= static_cast<size_t>(size)) throw std::length_error("too long");
    } catch (const std::length_error &) {
        return -1;
    }
    std::copy(joined.begin(), joined.end(), out);
    out[joined.size()] = '\0';
    return static_cast<int>(joined.size());
}
