import FuzzSupport

// SwiftPM links `FuzzConfiguration_main` as the program's main; it runs libFuzzer's driver.
@_cdecl("FuzzConfiguration_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    Harness.main(.configuration, argc, argv, fuzzTestOneInput)
}

// The callback (also the symbol libFuzzer's unused FuzzerMain.o refers to).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.run(.configuration, UnsafeBufferPointer(start: data, count: size))
}
