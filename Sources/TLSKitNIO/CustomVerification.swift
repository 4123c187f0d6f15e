#if NIO
public import NIOCore
public import TLSCore

/// A custom verification callback for ``TLSKitClientHandler`` / ``TLSKitServerHandler``:
/// swift-nio-ssl's `NIOSSLCustomVerificationCallback`, with the verdict type of TLSKit.
///
/// Called once per handshake, on the channel's event loop, with the peer's certificates
/// as sent (DER, leaf first) and a promise for the verdict. Complete the promise at once
/// or later, from any thread (an OCSP or SPIFFE lookup); the handler resumes the
/// handshake on the event loop when it is completed. Failing the promise rejects the
/// certificate: with the error's ``TLSError/verificationFailure`` when it is a
/// `TLSError` that has one, else ``TLSError/VerificationFailure/other``.
///
/// As with NIOSSL, the verdict replaces the chain verification (trust roots, validity…)
/// and the client's host-name verification still follows an accept, unless the context
/// was made with `.noHostnameVerification` (see ``TLSCustomVerification``, which also gives
/// TLSKit's own verdict to a callback that wants to extend it rather than replace it).
/// Must not call back into the handler synchronously (NIOSSL's rule too).
///
/// If the channel closes or the handler is removed while the promise is pending, the
/// handler forgets it: completing it later is harmless, and the application still owns
/// it (complete it, or NIO's debug leak check will say it was dropped).
public typealias TLSKitCustomVerificationCallback = ([[UInt8]], EventLoopPromise<TLSVerificationVerdict>) -> Void

/// Turns a ``TLSKitCustomVerificationCallback`` into the connection's
/// ``TLSCustomVerification``. The callback is only ever called inside a handshake step,
/// which runs on the channel's event loop; `eventLoop` is set when the handler is added.
final class TLSKitVerificationBridge: @unchecked Sendable {
    // @unchecked: `callback` and `eventLoop` are used on the channel's event loop only
    // (handlerAdded, and the handshake steps that run the library's verify callback).
    private let callback: TLSKitCustomVerificationCallback
    var eventLoop: (any EventLoop)?

    init(_ callback: @escaping TLSKitCustomVerificationCallback) {
        self.callback = callback
    }

    /// The connection-level callback: makes the promise, hands it to the application,
    /// and passes its result on to TLSKit's completion (which wakes the handler).
    var verification: TLSCustomVerification {
        TLSCustomVerification { [self] request, completion in
            guard let eventLoop else {
                completion(.reject(.other))  // cannot happen: handshakes start after handlerAdded
                return
            }
            eventLoop.preconditionInEventLoop()
            let promise = eventLoop.makePromise(of: TLSVerificationVerdict.self)
            promise.futureResult.whenComplete { result in
                switch result {
                case .success(let verdict):
                    completion(verdict)
                case .failure(let error):
                    completion(.reject((error as? TLSError)?.verificationFailure ?? .other))
                }
            }
            callback(request.peerCertificates, promise)
        }
    }
}
#endif

#if NIO
/// A weak reference to a handler, for the verification wake-up (which the connection
/// keeps: a strong one would make a cycle until the answer comes).
final class TLSKitWeakHandler {
    weak var handler: TLSKitHandler?
    init(_ handler: TLSKitHandler) { self.handler = handler }
}
#endif
