#if OpenSSL
#endif
