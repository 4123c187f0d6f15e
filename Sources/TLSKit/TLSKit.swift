@_exported import TLSCore
