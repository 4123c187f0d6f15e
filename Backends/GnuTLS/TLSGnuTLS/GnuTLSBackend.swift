#if GnuTLS
#endif
