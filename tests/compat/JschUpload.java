// One upload with JSch, the Java SSH library many SIS export tools embed:
//   java -cp jsch.jar JschUpload.java PORT USER KEY LOCAL REMOTE [KEX]
// KEY is an RSA key in PEM form (JSch 0.1.55 reads no other); KEX, if given,
// is the only key exchange JSch may use. A refused upload prints the
// SftpException (its status code and the server's message) and exits 1.
import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;

public class JschUpload {
    public static void main(String[] args) throws Exception {
        JSch jsch = new JSch();
        jsch.addIdentity(args[2]);
        Session session = jsch.getSession(args[1], "127.0.0.1", Integer.parseInt(args[0]));
        session.setConfig("StrictHostKeyChecking", "no");
        if (args.length > 5) {
            session.setConfig("kex", args[5]);
        }
        session.connect(30000);
        ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
        sftp.connect(30000);
        try {
            sftp.put(args[3], args[4]);
        } catch (com.jcraft.jsch.SftpException e) {
            // What a Java export tool's log shows of a refused upload; the
            // session is closed, or its thread keeps the JVM alive.
            System.out.println("SftpException " + e.id + ": " + e.getMessage());
            sftp.disconnect();
            session.disconnect();
            System.exit(1);
        }
        sftp.disconnect();
        session.disconnect();
        System.out.println("host key " + session.getHostKey().getType());
    }
}
