// read(2) and write(2) under names no type's `read`/`write` method can shadow, so the
// callers need no module-qualified call (`Glibc.read`) and compile on Glibc or Musl.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `read(2)`.
@_spi(TLSBackendImplementation)
public func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// `write(2)`.
@_spi(TLSBackendImplementation)
public func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
