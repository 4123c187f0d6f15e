import ArgumentParser
import TLSKit

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the backend, its run-time library version and its capabilities."
    )

    func run() {
        let backends = TLSBuiltInBackends.available
        print("default backend: \(DefaultTLSBackend.id.name)")
        for backend in backends {
            print("")
            print("backend:  \(backend.id)")
            print("library:  \(backend.libraryVersion)")
            print("capabilities:")
            let width = TLSCapabilities.all.map(\.1.count).max() ?? 0
            for (capability, name) in TLSCapabilities.all {
                let padded = name + String(repeating: " ", count: width - name.count)
                print("  \(padded)  \(backend.capabilities.contains(capability) ? "yes" : "no")")
            }
        }
    }
}
