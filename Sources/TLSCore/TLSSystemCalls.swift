// read(2), write(2) and close(2) for TLSKit's own targets (the core, tlsctl), under
// names no type's `read`/`write`/`close` method can shadow, so the callers need no
// module-qualified call (`Glibc.read`) and compile on Glibc or Musl.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `read(2)`.
package func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// `write(2)`.
package func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

/// `close(2)` under whichever C library this platform has (Glibc, Musl or Darwin), so
/// that code closing descriptors does not name one of them.
package func systemClose(_ descriptor: Int32) {
    _ = close(descriptor)
}
