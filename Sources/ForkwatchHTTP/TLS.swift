import ForkwatchCore
import NIOSSL

/// oslo's `sslutils`: a server context from `cert_file` and `key_file`; with `ca_file`, client
/// certificates are required and checked against it. Errors name the file and what is wrong.
public enum TLSSetup {
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func serverContext(_ options: HTTPOptions) throws(SetupError) -> NIOSSLContext? {
        guard let certFile = options.certFile, let keyFile = options.keyFile else { return nil }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certFile) } catch {
            throw SetupError(description: "cert_file \(certFile): \(reason(error))")
        }
        guard !chain.isEmpty else { throw SetupError(description: "cert_file \(certFile): no PEM certificate in it") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw SetupError(description: "key_file \(keyFile): \(reason(error))")
        }
        var configuration: TLSConfiguration
        if let caFile = options.caFile {
            do { _ = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
                throw SetupError(description: "ca_file \(caFile): \(reason(error))")
            }
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key), trustRoots: .file(caFile))
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration = .makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        do {
            // BoringSSL checks here that the key belongs to the certificate.
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SetupError(
                description:
                    "cert_file \(certFile) with key_file \(keyFile): \(reason(error)) (does the key match the certificate?)"
            )
        }
    }

    private static func reason(_ error: Error) -> String {
        if let error = error as? NIOSSLError {
            switch error {
            case .failedToLoadCertificate: return "not a readable PEM certificate"
            case .failedToLoadPrivateKey: return "not a readable PEM private key"
            default: return "\(error)"
            }
        }
        if let error = error as? BoringSSLError { return "\(error)" }
        return "\(error)"
    }
}
