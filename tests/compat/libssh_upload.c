/* One upload with libssh (libssh.org; 0.10 in Debian 12), the C SSH library of
 * KDE's SFTP, of curl when built with it, and of many C/C++ export tools:
 *   cc -o libssh_upload libssh_upload.c -lssh
 *   ./libssh_upload PORT USER KEY KNOWN_HOSTS LOCAL REMOTE
 * logs in to 127.0.0.1:PORT as USER with the private key file KEY, trusting
 * only the host keys in KNOWN_HOSTS, writes the file LOCAL to REMOTE and prints
 * the libssh version and the key types used. Any failure, a write or close the
 * server refuses included, prints libssh's error and exits 1.
 * LIBSSH_VERBOSITY=3 (SSH_LOG_PROTOCOL) or 4 (SSH_LOG_FUNCTIONS) logs the
 * exchange on standard error. */
#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static ssh_session session;
static sftp_session sftp;

static int fail(const char *step) {
    fprintf(stderr, "libssh %s: %s failed: %s", ssh_version(0), step, ssh_get_error(session));
    if (sftp != NULL && sftp_get_error(sftp) != SSH_FX_OK)
        fprintf(stderr, " (SFTP status %d)", sftp_get_error(sftp));
    fputc('\n', stderr);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s PORT USER KEY KNOWN_HOSTS LOCAL REMOTE\n", argv[0]);
        return 2;
    }
    unsigned int port = (unsigned int)atoi(argv[1]);
    const char *verbosity_env = getenv("LIBSSH_VERBOSITY");
    int verbosity = verbosity_env != NULL ? atoi(verbosity_env) : SSH_LOG_NOLOG;
    int no = 0;
    session = ssh_new();
    if (session == NULL) return fprintf(stderr, "ssh_new failed\n"), 1;
    if (ssh_options_set(session, SSH_OPTIONS_HOST, "127.0.0.1") < 0 ||
        ssh_options_set(session, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(session, SSH_OPTIONS_USER, argv[2]) < 0 ||
        ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, argv[4]) < 0 ||
        ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(session, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0)
        return fail("ssh_options_set");
    if (ssh_connect(session) != SSH_OK) return fail("ssh_connect");
    enum ssh_known_hosts_e known = ssh_session_is_known_server(session);
    if (known != SSH_KNOWN_HOSTS_OK) {
        fprintf(stderr, "libssh: the server's host key is not one in %s (ssh_known_hosts_e %d)\n",
                argv[4], known);
        return 1;
    }
    ssh_key host_key, key;
    if (ssh_get_server_publickey(session, &host_key) != SSH_OK) return fail("ssh_get_server_publickey");
    if (ssh_pki_import_privkey_file(argv[3], NULL, NULL, NULL, &key) != SSH_OK)
        return fail("reading the private key");
    if (ssh_userauth_publickey(session, NULL, key) != SSH_AUTH_SUCCESS)
        return fail("ssh_userauth_publickey");

    sftp = sftp_new(session);
    if (sftp == NULL) return fail("sftp_new");
    if (sftp_init(sftp) != SSH_OK) return fail("sftp_init");
    int local = open(argv[5], O_RDONLY);
    if (local < 0) return perror(argv[5]), 1;
    sftp_file file = sftp_open(sftp, argv[6], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (file == NULL) return fail("sftp_open");
    char buf[16384];
    ssize_t n;
    while ((n = read(local, buf, sizeof buf)) > 0) {
        for (ssize_t done = 0; done < n;) {
            ssize_t written = sftp_write(file, buf + done, (size_t)(n - done));
            if (written <= 0) return fail("sftp_write");
            done += written;
        }
    }
    if (n < 0) return perror(argv[5]), 1;
    close(local);
    if (sftp_close(file) != SSH_NO_ERROR) return fail("sftp_close");

    printf("libssh %s, %s user key, %s host key\n", ssh_version(0),
           ssh_key_type_to_char(ssh_key_type(key)), ssh_key_type_to_char(ssh_key_type(host_key)));
    ssh_key_free(key);
    ssh_key_free(host_key);
    sftp_free(sftp);
    ssh_disconnect(session);
    ssh_free(session);
    return 0;
}
