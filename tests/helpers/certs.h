/* certs.h — throwaway keys and certificates for tests: a self-signed TLS certificate for 127.0.0.1, P-256 and RSA
 * private keys as PKCS#8 PEM (an APNs .p8, a VAPID key, a service account's private_key). */
#ifndef CORRAL_TEST_CERTS_H
#define CORRAL_TEST_CERTS_H

/* Writes a fresh self-signed P-256 certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1 and DNS:localhost, valid
 * from an hour ago for a day) to cert_path and its private key (PKCS#8 PEM, mode 0600) to key_path. The certificate
 * is its own issuer, so cert_path is also the CA file a client trusts (curl's CURLOPT_CAINFO, --cacert). Returns 0,
 * or -1 with a message on stderr. */
int cr_test_make_cert(const char *cert_path, const char *key_path);

/* A fresh private key as PKCS#8 PEM text ("-----BEGIN PRIVATE KEY-----"): P-256 for cr_test_make_ec_pem (the
 * format of an APNs .p8 file), RSA of `bits` bits (e = 65537) for cr_test_make_rsa_pem. malloc'd, NUL-terminated;
 * the caller wipes (OPENSSL_cleanse) and frees it. NULL with a message on stderr when it cannot. */
char *cr_test_make_ec_pem(void);
char *cr_test_make_rsa_pem(int bits);

/* Writes text to path with mode 0600 (created or truncated). Returns 0, or -1 with a message on stderr. */
int cr_test_write_secret(const char *path, const char *text);

#endif
