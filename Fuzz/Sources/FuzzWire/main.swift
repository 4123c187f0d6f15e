import FuzzSupport

// SwiftPM links `FuzzWire_main` as the program's main; it runs libFuzzer's driver.
@_cdecl("FuzzWire_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    Harness.main(.wire, argc, argv, fuzzTestOneInput)
}

// The callback (also the symbol libFuzzer's unused FuzzerMain.o refers to).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.run(.wire, UnsafeBufferPointer(start: data, count: size))
}
