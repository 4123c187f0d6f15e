import Testing
import TLSKit
import TLSCore

/// `TLSUntrustedText`, the one place peer bytes become text: every byte that is not
/// well-formed UTF-8 and every control character is written `\xNN`, never decoded or
/// shown raw.
@Suite("Untrusted text", .timeLimit(.minutes(5)))
struct UntrustedTextTests {
    @Test("overlong UTF-8 forms and surrogates are escaped byte by byte, never decoded (E0 80 AE is not '.')",
          arguments: [
              ([0x61, 0xE0, 0x80, 0xAE, 0x62], #"a\xe0\x80\xaeb"#),          // overlong '.' (3 bytes)
              ([0xF0, 0x80, 0x80, 0xAE], #"\xf0\x80\x80\xae"#),                // overlong '.' (4 bytes)
              ([0xC0, 0xAE, 0xC1, 0x81], #"\xc0\xae\xc1\x81"#),                // overlong (2 bytes)
              ([0xE0, 0x9F, 0xBF], #"\xe0\x9f\xbf"#),                          // overlong U+07FF
              ([0xED, 0xA0, 0x80], #"\xed\xa0\x80"#),                          // a surrogate, U+D800
              ([0xF4, 0x90, 0x80, 0x80], #"\xf4\x90\x80\x80"#),                // over U+10FFFF
              ([0x2E, 0xE2, 0x82], #".\xe2\x82"#),                             // truncated
              ([0xC3, 0xA9, 0xE0, 0xA0, 0x80], "\u{E9}\u{800}"),               // well-formed, kept
          ] as [([UInt8], String)])
    func malformedUTF8(bytes: [UInt8], shown: String) {
        #expect(TLSUntrustedText.decode(bytes) == shown)
        #expect(TLSUntrustedText.escape(bytes: bytes) == shown)
    }

    @Test("C0, DEL and C1 controls become \\xNN per UTF-8 byte; other text, backslashes included, is kept",
          arguments: [
              ("a\u{0}b", #"a\x00b"#),
              ("\u{1B}[2J", #"\x1b[2J"#),
              ("x\u{7F}", #"x\x7f"#),
              ("\u{80}", #"\xc2\x80"#),
              ("next\u{85}line", #"next\xc2\x85line"#),
              ("\u{9B}31m", #"\xc2\x9b31m"#),
              ("\u{9F}", #"\xc2\x9f"#),
              ("\u{A0}\u{E9}", "\u{A0}\u{E9}"),      // NBSP and é are not controls
              (#"C:\x41"#, #"C:\x41"#),
          ] as [(String, String)])
    func controls(text: String, shown: String) {
        #expect(TLSUntrustedText.escape(text) == shown)
        #expect(TLSUntrustedText.escape(bytes: Array(text.utf8)) == shown)
        #expect(TLSUntrustedText.escape(shown) == shown, "escaping is idempotent")
    }
}
