// Certificates that change while a server runs: a context whose material (identity,
// SNI identities, trust roots, CRLs) is rebuilt from its configuration on demand or when
// its files change, swapped atomically, the old one kept when the new one fails.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

/// A ``TLSContext`` whose certificates, keys, trust roots and CRLs can be replaced while
/// it serves: certificate rotation without a restart (ACME renewals, short-lived
/// certificates), as ghostunnel does on a signal or a timer.
///
/// It holds the context new connections are made from (``current``). A reload builds a
/// whole new context from the configuration — files are read again, the key is checked
/// against its certificate by the backend, leaves outside their validity period are
/// refused — and only when that succeeds replaces ``current`` in one step. A reload that
/// fails keeps the material in use and reports why: a server never loses its certificate.
///
/// ```swift
/// var config = TLSConfiguration.makeServerConfiguration(
///     certificateChain: .file("/etc/letsencrypt/live/example.com/fullchain.pem"),
///     privateKey: .file("/etc/letsencrypt/live/example.com/privkey.pem"))
/// let reloading = try TLSReloadingContext(backend: DefaultTLSBackend.self, configuration: config) { event in
///     print(event)   // one line per reload, success or failure
/// }
/// reloading.startWatching(every: .seconds(60))   // reloads when the files change
/// let socket = try listener.accept(context: reloading)
/// ```
///
/// **What connections keep.** A connection holds the context it was made from: one in
/// flight when the material changes finishes, and goes on, with the old certificate; the
/// next one gets the new material. **Resumption across a reload**: when
/// ``TLSConfiguration/sessionTicketKeys`` is empty, the reloading context makes one random
/// ticket key when it is created and gives it to every context it builds, so a ticket
/// issued before a reload resumes after it (TLS 1.2 and 1.3; on a backend with
/// ``TLSCapabilities/sessionResumption``, with tickets enabled). Given keys
/// are used as they are: rotate them through a ``init(backend:refusesInvalidCertificates:onReload:makeConfiguration:)``
/// closure to change them too.
///
/// **What is checked before a swap**: everything ``TLSBackend/makeContext(_:)`` checks
/// (readable files, PEM, passphrase, key matching its certificate, capabilities), and with
/// `refusesInvalidCertificates` (the default) that each leaf read from a
/// ``TLSCredential/certificateChain(_:privateKey:passphrase:)`` (primary, additional and
/// SNI identities) is inside its validity period now. A PKCS#12 bundle is opened by the
/// backend alone: its leaf's dates are not checked here.
///
/// Thread-safe: ``current`` may be read from any thread while another reloads; reloads
/// are serialised.
public final class TLSReloadingContext: Sendable {
    /// The backend every context is made with.
    public let backend: any TLSBackend.Type
    /// Whether a leaf outside its validity period (expired, or not yet valid) is refused.
    public let refusesInvalidCertificates: Bool

    private struct Material: Sendable {
        var context: TLSContext
        var generation: Int
        var files: TLSWatchedFiles
    }

    private let material: Mutex<Material>
    /// Serialises reloads (a signal and a timer may ask at once); held while building.
    private let reloading = Mutex<Void>(())
    private let makeConfiguration: @Sendable () throws -> TLSConfiguration
    private let ticketKey: TLSSessionTicketKey
    private let onReload: (@Sendable (TLSReloadEvent) -> Void)?
    private let watcher = Mutex<Watcher?>(nil)

    /// The timer of ``startWatching(every:)``. Dispatch sources are thread-safe, but not
    /// marked Sendable; this box is only created, cancelled and dropped.
    private final class Watcher: @unchecked Sendable {
        let timer: any DispatchSourceTimer
        init(_ timer: any DispatchSourceTimer) { self.timer = timer }
        deinit { timer.cancel() }
    }

    /// Creates a reloading context from a configuration whose sources are re-read at each
    /// reload: give ``TLSDataSource/file(_:)`` sources (bytes in memory never change).
    /// - Parameters:
    ///   - backend: the backend that makes each context.
    ///   - configuration: the configuration every reload rebuilds.
    ///   - refusesInvalidCertificates: refuse a leaf that is expired or not yet valid
    ///     (the default), at creation and at every reload.
    ///   - onReload: called after every reload attempt, success or failure (not for the
    ///     creation, which throws instead), on the thread that reloaded.
    /// - Throws: the ``TLSError`` of the first load: there is no old material to keep.
    public convenience init(
        backend: any TLSBackend.Type,
        configuration: TLSConfiguration,
        refusesInvalidCertificates: Bool = true,
        onReload: (@Sendable (TLSReloadEvent) -> Void)? = nil
    ) throws {
        try self.init(backend: backend, refusesInvalidCertificates: refusesInvalidCertificates, onReload: onReload) {
            configuration
        }
    }

    /// Creates a reloading context whose configuration is made again at every reload
    /// (from a secrets store, or with rotated ticket keys). A closure that throws fails
    /// that reload, and the material in use stays.
    /// - Throws: the ``TLSError`` of the first load (or what the closure threw).
    public init(
        backend: any TLSBackend.Type,
        refusesInvalidCertificates: Bool = true,
        onReload: (@Sendable (TLSReloadEvent) -> Void)? = nil,
        makeConfiguration: @escaping @Sendable () throws -> TLSConfiguration
    ) throws {
        self.backend = backend
        self.refusesInvalidCertificates = refusesInvalidCertificates
        self.makeConfiguration = makeConfiguration
        self.onReload = onReload
        let ticketKey = TLSSessionTicketKey.generate()
        self.ticketKey = ticketKey
        let first = try Self.build(backend: backend, makeConfiguration: makeConfiguration, ticketKey: ticketKey,
                                   refusesInvalidCertificates: refusesInvalidCertificates)
        material = Mutex(Material(context: first.context, generation: 1, files: first.files))
    }

    deinit {
        watcher.withLock { $0 = nil }
    }

    /// The context new connections are made from: the last material that loaded.
    public var current: TLSContext { material.withLock { $0.context } }

    /// How many times material was loaded: 1 after creation, one more per successful
    /// reload.
    public var generation: Int { material.withLock { $0.generation } }

    /// A connection from ``current`` (`SSL_new` on the context in use).
    public func makeConnection() -> TLSConnection { current.makeConnection() }

    /// Rebuilds the context now, whether or not the files changed (what `SIGHUP` does).
    /// On success new connections use the new material; on failure the material in use
    /// stays. Calls `onReload` with the event, and returns it.
    @discardableResult
    public func reload() -> TLSReloadEvent {
        let event = reloading.withLock { _ in attempt(trigger: .request) }
        onReload?(event)
        return event
    }

    /// Rebuilds the context only when a file the configuration names changed since the
    /// last load (contents, size, inode or modification time; a file that appears or
    /// disappears counts): what the timer of ``startWatching(every:)`` calls.
    /// - Returns: the reload's event, or nil when nothing changed (and nothing is reported).
    @discardableResult
    public func reloadIfChanged() -> TLSReloadEvent? {
        let event: TLSReloadEvent? = reloading.withLock { _ in
            let watched = material.withLock { $0.files }
            guard watched.changed() else { return nil }
            return attempt(trigger: .filesChanged)
        }
        if let event { onReload?(event) }
        return event
    }

    /// Checks the files every `interval` (on a background queue) and reloads when they
    /// changed; each attempt is reported to `onReload`. Replaces an earlier timer.
    public func startWatching(every interval: Duration) {
        let (seconds, attoseconds) = interval.components
        let nanoseconds = Int(clamping: max(1_000_000, min(seconds, 86_400 * 365) * 1_000_000_000 + attoseconds / 1_000_000_000))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "TLSReloadingContext.watcher"))
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler { [weak self] in _ = self?.reloadIfChanged() }
        timer.resume()
        let box = Watcher(timer)
        watcher.withLock { $0 = box }   // the old box, if any, cancels its timer
    }

    /// Stops the timer of ``startWatching(every:)``. A check in progress finishes.
    public func stopWatching() {
        watcher.withLock { $0 = nil }
    }

    /// One reload, under `reloading` (the caller reports the event, outside the lock:
    /// `onReload` may itself ask for a reload).
    private func attempt(trigger: TLSReloadEvent.Trigger) -> TLSReloadEvent {
        // The files as they are before loading: a failed load still marks them seen, so
        // the timer retries when they change again rather than at every tick.
        let before = TLSWatchedFiles(paths: material.withLock { $0.files.paths })
        do {
            let built = try Self.build(backend: backend, makeConfiguration: makeConfiguration, ticketKey: ticketKey,
                                       refusesInvalidCertificates: refusesInvalidCertificates)
            let generation = material.withLock { material in
                material = Material(context: built.context, generation: material.generation + 1, files: built.files)
                return material.generation
            }
            return TLSReloadEvent(trigger: trigger, generation: generation, error: nil, leafCertificates: built.leaves)
        } catch {
            let reason = error as? TLSError
                ?? TLSError(.invalidConfiguration, "the configuration could not be made: \(error)", backend: backend.id)
            let generation = material.withLock { material in
                material.files = before
                return material.generation
            }
            return TLSReloadEvent(trigger: trigger, generation: generation, error: reason, leafCertificates: [])
        }
    }

    private static func build(
        backend: any TLSBackend.Type,
        makeConfiguration: () throws -> TLSConfiguration,
        ticketKey: TLSSessionTicketKey,
        refusesInvalidCertificates: Bool
    ) throws -> (context: TLSContext, files: TLSWatchedFiles, leaves: [TLSCertificateInfo]) {
        var configuration = try makeConfiguration()
        if configuration.sessionTicketKeys.isEmpty, configuration.sessionTicketsEnabled,
           backend.capabilities.contains(.sessionResumption) {
            configuration.sessionTicketKeys = [ticketKey]
        }
        // Fingerprints first: a file replaced while the context loads is seen as changed
        // at the next check rather than missed.
        let files = TLSWatchedFiles(paths: configuration.watchedPaths)
        let context = try backend.makeContext(configuration)
        var leaves: [TLSCertificateInfo] = []
        for chain in configuration.certificateChainSources {
            let bytes = try chain.load(backend: backend.id, code: .badCertificate, what: "certificate chain")
            guard let der = TLSPEMReader.firstCertificate(in: bytes) else { continue }
            // The dates are read by the core (every backend alike, one that parses no
            // certificate included); the summary for the event by the backend, if it can.
            if let info = try? backend.certificateInfo(der: der) { leaves.append(info) }
            guard refusesInvalidCertificates else { continue }
            let leaf = der.withUnsafeBytes { TLSLeafIdentity(der: $0) }
            let name = TLSUntrustedText.escape(leaf?.commonName.map { "CN=\($0)" } ?? "without a common name")
            guard let validity = leaf?.validity else {
                throw TLSError(.badCertificate, "the validity dates of the certificate \(name) cannot be read; refused",
                               backend: backend.id)
            }
            let now = Int64(time(nil))
            if now > validity.upperBound {
                throw TLSError(.badCertificate, "the certificate \(name) expired at \(TLSReloadEvent.utc(validity.upperBound)); refused",
                               backend: backend.id)
            }
            if now < validity.lowerBound {
                throw TLSError(.badCertificate, "the certificate \(name) is not valid before \(TLSReloadEvent.utc(validity.lowerBound)); refused",
                               backend: backend.id)
            }
        }
        return (context, files, leaves)
    }
}

/// What one reload of a ``TLSReloadingContext`` did: reported to its `onReload` callback
/// and returned by ``TLSReloadingContext/reload()``. Its `description` is one log line.
public struct TLSReloadEvent: Sendable, CustomStringConvertible {
    /// What asked for the reload.
    public enum Trigger: Sendable, Hashable {
        /// ``TLSReloadingContext/reload()`` (a signal, an admin command).
        case request
        /// The timer of ``TLSReloadingContext/startWatching(every:)``, or
        /// ``TLSReloadingContext/reloadIfChanged()``: a watched file changed.
        case filesChanged
    }

    /// What asked for the reload.
    public let trigger: Trigger
    /// The generation in use after the event: one more than before on success, the
    /// same on failure.
    public let generation: Int
    /// Why the reload failed (the material in use stays); nil on success.
    public let error: TLSError?
    /// On success, the leaf certificate of each certificate chain now in use (primary
    /// first, then additional and SNI identities; PKCS#12 bundles left out, and all of
    /// them on a backend that does not parse certificates).
    public let leafCertificates: [TLSCertificateInfo]

    /// True when the new material is in use.
    public var succeeded: Bool { error == nil }

    public var description: String {
        let cause = trigger == .request ? "on request" : "files changed"
        if let error {
            return "reload (\(cause)) FAILED, keeping generation \(generation): \(error)"
        }
        let leaves = leafCertificates.map { "\(TLSUntrustedText.escape($0.subject)) until \(Self.utc($0.notValidAfter))" }.joined(separator: "; ")
        return "reload (\(cause)): generation \(generation) in use" + (leaves.isEmpty ? "" : ": \(leaves)")
    }

    /// Seconds since 1970 as `2026-12-08 01:02:03 UTC` (also tlsctl's certificate dates).
    package static func utc(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let year = String(parts.tm_year + 1900)
        return String(repeating: "0", count: max(0, 4 - year.count)) + year + "-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
    }
}

extension TLSConfiguration {
    /// Every file the configuration reads: what a reloading context watches.
    var watchedPaths: [String] {
        var sources: [TLSDataSource?] = [certificateChain, privateKey]
        for credential in additionalCredentials + serverNameCredentials.flatMap(\.credentials) {
            switch credential {
            case .certificateChain(let chain, let key, _): sources += [chain, key]
            case .pkcs12(let bundle, _): sources.append(bundle)
            }
        }
        sources += certificateRevocationLists
        var paths: [String] = sources.compactMap { if case .file(let path)? = $0 { path } else { nil } }
        switch trustRoots {
        case .system: break
        case .caFile(let path), .caDirectory(let path): paths.append(path)
        case .certificates(let roots): paths += roots.compactMap { if case .file(let path) = $0 { path } else { nil } }
        }
        return paths
    }

    /// The certificate chains whose leaves the core can read: the primary, then the
    /// additional and SNI identities given as chains.
    var certificateChainSources: [TLSDataSource] {
        var chains: [TLSDataSource] = certificateChain.map { [$0] } ?? []
        for credential in additionalCredentials + serverNameCredentials.flatMap(\.credentials) {
            if case .certificateChain(let chain, _, _) = credential { chains.append(chain) }
        }
        return chains
    }
}

/// A snapshot of files (a directory: its entries) to tell whether any changed.
struct TLSWatchedFiles: Sendable {
    let paths: [String]
    private let fingerprints: [UInt64]

    init(paths: [String]) {
        self.paths = paths
        fingerprints = paths.map(Self.fingerprint)
    }

    /// True when a file differs from the snapshot.
    func changed() -> Bool { paths.map(Self.fingerprint) != fingerprints }

    /// FNV-1a over the file's identity (device, inode, size, modification time) and its
    /// contents; a directory's entries by name and identity. 0 for a missing file.
    static func fingerprint(_ path: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { for byte in $0 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 } }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        mix(UInt64(info.st_dev)); mix(UInt64(info.st_ino)); mix(Int64(info.st_size))
        #if canImport(Darwin)
        mix(Int64(info.st_mtimespec.tv_sec)); mix(Int64(info.st_mtimespec.tv_nsec))
        #else
        mix(Int64(info.st_mtim.tv_sec)); mix(Int64(info.st_mtim.tv_nsec))
        #endif
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard let directory = opendir(path) else { return hash }
            defer { closedir(directory) }
            var entries: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { entries.append(name) }
            }
            for name in entries.sorted() {
                for byte in name.utf8 { mix(byte) }
                mix(fingerprint(path + "/" + name))
            }
            return hash
        }
        if let bytes = try? TLSDataSource.file(path).load(backend: .tlsKit, code: .badCertificate, what: "watched") {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        return hash
    }
}

/// The first certificate of a PEM text (DER bytes are returned as they are): enough
/// base64 to read a leaf's validity dates in the core, and the leaf tlsctl prints.
package enum TLSPEMReader {
    package static func firstCertificate(in bytes: [UInt8]) -> [UInt8]? {
        guard TLSDataSource.isPEM(bytes) else { return bytes.isEmpty ? nil : bytes }
        guard let begin = find(Array("-----BEGIN CERTIFICATE-----".utf8), in: bytes, from: 0),
              let end = find(Array("-----END CERTIFICATE-----".utf8), in: bytes, from: begin.upperBound)
        else { return nil }
        return base64Decode(bytes[begin.upperBound..<end.lowerBound])
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Range<Int>? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count) where bytes[index..<index + needle.count].elementsEqual(needle) {
            return index..<index + needle.count
        }
        return nil
    }

    /// Standard base64, whitespace ignored; nil on any other character.
    static func base64Decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            default: return nil
            }
            accumulator = (accumulator << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((accumulator >> UInt32(bits)) & 0xff))
            }
        }
        return output
    }
}
