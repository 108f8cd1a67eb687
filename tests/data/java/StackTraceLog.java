// Writes java.util.logging events with real Java stack traces to a file, for the multiline
// end-to-end test (tests/tests/e2e/multiline.rs). Run as a single-file program:
//
//   java -Djava.util.logging.SimpleFormatter.format='%1$tF %1$tT.%1$tL %4$s %3$s - %5$s%6$s%n' \
//        StackTraceLog.java OUT_FILE EVENTS
//
// Event i (0-based) is, by i % 4: an INFO line; a SEVERE login failure whose stack trace has two
// "Caused by:" levels with "... N more"; a WARNING whose exception carries a suppressed one
// (try-with-resources); a SEVERE NullPointerException. Every event's first line contains
// "event=i". Prints the number of events written.
import java.io.IOException;
import java.sql.SQLException;
import java.util.logging.FileHandler;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

public class StackTraceLog {
    public static void main(String[] args) throws Exception {
        String path = args[0];
        int events = Integer.parseInt(args[1]);
        Logger log = Logger.getLogger("com.example.erp.Login");
        log.setUseParentHandlers(false);
        FileHandler out = new FileHandler(path, true);
        out.setEncoding("UTF-8");
        out.setFormatter(new SimpleFormatter());
        log.addHandler(out);
        for (int i = 0; i < events; i++) {
            switch (i % 4) {
                case 0 -> log.info("event=" + i + " user=yamada ログイン成功");
                case 1 -> {
                    try {
                        new LoginService().login("yamada", i);
                    } catch (IllegalStateException e) {
                        log.log(Level.SEVERE, "event=" + i + " ログイン失敗", e);
                    }
                }
                case 2 -> {
                    try (Session s = new Session(i)) {
                        s.send();
                    } catch (Exception e) {
                        log.log(Level.WARNING, "event=" + i + " send failed, retrying", e);
                    }
                }
                default -> {
                    try {
                        new LoginService().describe(null);
                    } catch (NullPointerException e) {
                        log.log(Level.SEVERE, "event=" + i + " unexpected", e);
                    }
                }
            }
        }
        out.close();
        System.out.println(events);
    }

    static class LoginService {
        void login(String user, int i) {
            try {
                new UserDao().find(user, i);
            } catch (SQLException e) {
                throw new IllegalStateException("login failed for " + user, e);
            }
        }

        int describe(String user) {
            return user.length();
        }
    }

    static class UserDao {
        void find(String user, int i) throws SQLException {
            try {
                connect(i);
            } catch (IOException e) {
                throw new SQLException("SELECT * FROM users WHERE name = ? failed", "08001", e);
            }
        }

        void connect(int i) throws IOException {
            throw new IOException("Connection refused: db.example.internal:5432 (attempt " + i + ")");
        }
    }

    static class Session implements AutoCloseable {
        private final int id;

        Session(int id) {
            this.id = id;
        }

        void send() throws IOException {
            throw new IOException("Broken pipe (session " + id + ")");
        }

        @Override
        public void close() throws IOException {
            throw new IOException("close failed (session " + id + ")");
        }
    }
}
