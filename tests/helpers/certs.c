/* certs.c — self-signed TLS certificates and PKCS#8 private keys for tests (OpenSSL 3). */
#include "certs.h"
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_ssl_error(const char *what)
{
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof(err));
    fprintf(stderr, "certs: %s: %s\n", what, err);
}

/* Adds one X.509v3 extension given in openssl.cnf syntax. Returns 0 or -1. */
static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Writes a PEM file through fn with the given mode. Returns 0 or -1. */
static int write_pem(const char *path, mode_t mode, int (*fn)(FILE *, const void *), const void *obj)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode), ok;
    FILE *fp;
    if (fd < 0 || (fp = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "certs: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ok = fn(fp, obj);
    if (fclose(fp) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "certs: cannot write %s\n", path);
    return ok ? 0 : -1;
}

static int pem_cert(FILE *fp, const void *x)
{
    return PEM_write_X509(fp, (X509 *)x);
}

static int pem_key(FILE *fp, const void *k)
{
    return PEM_write_PrivateKey(fp, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

int cr_test_make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    unsigned char serial[8];
    BIGNUM *bn = NULL;
    int rc = -1;
    if (pkey == NULL || x == NULL) {
        print_ssl_error("key generation");
        goto done;
    }
    /* a random serial: clients that cache certificates by issuer and serial never mix two test runs up */
    if (RAND_bytes(serial, sizeof(serial)) != 1 || (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto done;
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") != 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") != 0) {
        print_ssl_error("certificate extensions");
        goto done;
    }
    if (X509_sign(x, pkey, EVP_sha256()) == 0) {
        print_ssl_error("X509_sign");
        goto done;
    }
    if (write_pem(cert_path, 0644, pem_cert, x) != 0 || write_pem(key_path, 0600, pem_key, pkey) != 0)
        goto done;
    rc = 0;
done:
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/* The PKCS#8 PEM of pkey, malloc'd. */
static char *pem_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    char *out = NULL, *data;
    long n;
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &data)) <= 0 || (out = malloc((size_t)n + 1)) == NULL) {
        print_ssl_error("PEM_write_bio_PrivateKey");
        BIO_free(bio);
        return NULL;
    }
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio); /* a secure-memory BIO: wiped on free */
    return out;
}

char *cr_test_make_ec_pem(void)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *pem;
    if (pkey == NULL) {
        print_ssl_error("P-256 key generation");
        return NULL;
    }
    pem = pem_of(pkey);
    EVP_PKEY_free(pkey);
    return pem;
}

char *cr_test_make_rsa_pem(int bits)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    char *pem;
    if (pkey == NULL) {
        print_ssl_error("RSA key generation");
        return NULL;
    }
    pem = pem_of(pkey);
    EVP_PKEY_free(pkey);
    return pem;
}

int cr_test_write_secret(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text), off = 0;
    if (fd < 0) {
        fprintf(stderr, "certs: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "certs: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -1;
}
