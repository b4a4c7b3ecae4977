// Decodes Avro single-object records with Apache Avro Java, as an independent reader of what linegate
// writes; interop/python/decode.py does the same with fastavro and prints the same lines.
//
//   java -cp "$(interop/fetch-java.sh)/*" interop/java/Decode.java SCHEMA_DIR RECORDS_FILE [--confluent ID=SCHEMA_FILE,...]
//
// SCHEMA_DIR holds released/<kind>/v<N>.avsc; every such schema goes into a SchemaStore.Cache and a map
// fingerprint -> schema. RECORDS_FILE has one record a line, `<label>\t<hex of the record's bytes>`
// (blank lines and lines starting with '#' are skipped). A single-object record (C3 01, 8-byte
// little-endian CRC-64-AVRO fingerprint, body) is decoded with a BinaryMessageDecoder whose reader
// schema is the writer schema of that fingerprint, so values come out as written. With --confluent, a
// record in Confluent's wire format (00, 4-byte big-endian schema id, body) is decoded with the writer
// schema of that id (a self-contained schema, as a registry returns it).
//
// Prints `<label>\t<JSON>` per record, the JSON rendered thus (decode.py renders the same way):
//   record -> object, map -> object, keys sorted by code point; array -> array; union -> the plain value
//   of its branch; enum -> symbol string; string -> string; bytes and fixed -> lowercase hex string;
//   int, long -> integer; float, double -> Python's repr of the (widened) double: shortest round-trip
//   digits, exponent form below 1e-4 and from 1e16 ("1e-05", "1.5e+16"), else "0.001", "3.0";
//   NaN, Infinity, -Infinity bare; boolean -> true/false; null -> null. Logical types are not applied:
//   a uuid is its string, a timestamp-millis its long. No spaces; strings escaped as Python's json.dumps
//   does with ensure_ascii (\" \\ \b \f \n \r \t, any other char outside 0x20..0x7e as \\u00xx).
// A record that cannot be decoded prints `<label>\tERROR <reason>` and the exit status is then 1:
//   ERROR bad hex | ERROR unknown format | ERROR unknown fingerprint <16 hex digits, bytes as on the wire>
//   | ERROR unknown schema id <id> | ERROR <n> trailing bytes | ERROR decode failed: <library's message>
import java.io.ByteArrayInputStream;
import java.io.File;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.*;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.*;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

public class Decode {
  public static void main(String[] args) throws Exception {
    System.setProperty("slf4j.internal.verbosity", "ERROR"); // no "no SLF4J providers" warning
    if (args.length != 2 && !(args.length == 4 && args[2].equals("--confluent"))) {
      System.err.println("usage: Decode SCHEMA_DIR RECORDS_FILE [--confluent ID=SCHEMA_FILE,...]");
      System.exit(2);
    }
    SchemaStore.Cache cache = new SchemaStore.Cache();
    Map<Long, Schema> byFingerprint = new HashMap<>();
    File[] kinds = new File(args[0], "released").listFiles(File::isDirectory);
    for (File kind : kinds) {
      for (File f : kind.listFiles((d, n) -> n.matches("v[0-9]+\\.avsc"))) {
        Schema s = new Schema.Parser().parse(f);
        cache.addSchema(s);
        byFingerprint.put(SchemaNormalization.parsingFingerprint64(s), s);
      }
    }
    Map<Integer, Schema> byId = new HashMap<>();
    if (args.length == 4) {
      for (String pair : args[3].split(",")) {
        String[] kv = pair.split("=", 2);
        byId.put(Integer.parseInt(kv[0].trim()), new Schema.Parser().parse(new File(kv[1].trim())));
      }
    }
    Map<Long, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();
    boolean failed = false;
    for (String line : Files.readAllLines(new File(args[1]).toPath())) {
      if (line.isBlank() || line.startsWith("#")) continue;
      String[] cols = line.split("\t", 2);
      String out;
      try {
        byte[] b = hex(cols.length == 2 ? cols[1].trim() : "");
        ByteArrayInputStream in = new ByteArrayInputStream(b);
        Object value;
        if (b.length >= 10 && (b[0] & 0xff) == 0xC3 && b[1] == 0x01) {
          long fp = ByteBuffer.wrap(b, 2, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
          Schema writer = byFingerprint.get(fp);
          if (writer == null) throw new Failure("unknown fingerprint " + toHex(Arrays.copyOfRange(b, 2, 10)));
          value = decoders
              .computeIfAbsent(fp, k -> new BinaryMessageDecoder<>(GenericData.get(), writer, cache))
              .decode(in);
        } else if (!byId.isEmpty() && b.length >= 5 && b[0] == 0) {
          int id = ByteBuffer.wrap(b, 1, 4).getInt();
          Schema writer = byId.get(id);
          if (writer == null) throw new Failure("unknown schema id " + id);
          in.skip(5);
          value = new GenericDatumReader<Object>(writer, writer, GenericData.get())
              .read(null, DecoderFactory.get().directBinaryDecoder(in, null));
        } else {
          throw new Failure("unknown format");
        }
        if (in.available() > 0) throw new Failure(in.available() + " trailing bytes");
        StringBuilder sb = new StringBuilder();
        render(value, sb);
        out = sb.toString();
      } catch (Failure e) {
        out = "ERROR " + e.getMessage();
      } catch (Exception e) {
        Throwable root = e;
        while (root.getCause() != null) root = root.getCause();
        out = "ERROR decode failed: " + root.getClass().getSimpleName() + ": " + root.getMessage();
      }
      failed |= out.startsWith("ERROR ");
      System.out.println(cols[0] + "\t" + out);
    }
    System.exit(failed ? 1 : 0);
  }

  static class Failure extends Exception {
    Failure(String message) { super(message); }
  }

  static byte[] hex(String s) throws Failure {
    if (s.length() % 2 != 0 || !s.matches("[0-9a-fA-F]*")) throw new Failure("bad hex");
    byte[] b = new byte[s.length() / 2];
    for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    return b;
  }

  static String toHex(byte[] b) {
    StringBuilder sb = new StringBuilder();
    for (byte x : b) sb.append(String.format("%02x", x & 0xff));
    return sb.toString();
  }

  // ---- JSON rendering (see the rules at the top) ----

  static void render(Object v, StringBuilder sb) {
    if (v == null) {
      sb.append("null");
    } else if (v instanceof GenericRecord) {
      GenericRecord r = (GenericRecord) v;
      TreeMap<String, Object> fields = new TreeMap<>(Decode::byCodePoint);
      for (Schema.Field f : r.getSchema().getFields()) fields.put(f.name(), r.get(f.pos()));
      renderObject(fields, sb);
    } else if (v instanceof Map) {
      TreeMap<String, Object> entries = new TreeMap<>(Decode::byCodePoint);
      for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) entries.put(e.getKey().toString(), e.getValue());
      renderObject(entries, sb);
    } else if (v instanceof Collection) {
      sb.append('[');
      String sep = "";
      for (Object item : (Collection<?>) v) {
        sb.append(sep);
        render(item, sb);
        sep = ",";
      }
      sb.append(']');
    } else if (v instanceof ByteBuffer) {
      ByteBuffer buf = ((ByteBuffer) v).duplicate();
      byte[] b = new byte[buf.remaining()];
      buf.get(b);
      string(toHex(b), sb);
    } else if (v instanceof GenericFixed) {
      string(toHex(((GenericFixed) v).bytes()), sb);
    } else if (v instanceof Float || v instanceof Double) {
      sb.append(pythonRepr(((Number) v).doubleValue()));
    } else if (v instanceof Integer || v instanceof Long || v instanceof Boolean) {
      sb.append(v);
    } else { // CharSequence (Utf8, String) and GenericEnumSymbol
      string(v.toString(), sb);
    }
  }

  static void renderObject(TreeMap<String, Object> m, StringBuilder sb) {
    sb.append('{');
    String sep = "";
    for (Map.Entry<String, Object> e : m.entrySet()) {
      sb.append(sep);
      string(e.getKey(), sb);
      sb.append(':');
      render(e.getValue(), sb);
      sep = ",";
    }
    sb.append('}');
  }

  static int byCodePoint(String a, String b) {
    return Arrays.compare(a.codePoints().toArray(), b.codePoints().toArray());
  }

  // As Python's json.dumps(ensure_ascii=True); Java chars are UTF-16 units, so a character beyond
  // U+FFFF comes out as its surrogate pair, as in Python.
  static void string(String s, StringBuilder sb) {
    sb.append('"');
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"': sb.append("\\\""); break;
        case '\\': sb.append("\\\\"); break;
        case '\b': sb.append("\\b"); break;
        case '\f': sb.append("\\f"); break;
        case '\n': sb.append("\\n"); break;
        case '\r': sb.append("\\r"); break;
        case '\t': sb.append("\\t"); break;
        default:
          if (c < 0x20 || c > 0x7e) sb.append(String.format("\\u%04x", (int) c));
          else sb.append(c);
      }
    }
    sb.append('"');
  }

  // Python's repr(float): the shortest digits that read back as D (the nearest such when several),
  // in fixed notation when 1e-4 <= |D| < 1e16, else as d.ddde+XX.
  static String pythonRepr(double d) {
    if (Double.isNaN(d)) return "NaN";
    if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
    if (d == 0) return 1 / d < 0 ? "-0.0" : "0.0";
    BigDecimal exact = new BigDecimal(Math.abs(d)), best = null;
    RoundingMode[] modes = {RoundingMode.HALF_EVEN, RoundingMode.FLOOR, RoundingMode.CEILING};
    for (int p = 1; best == null; p++) {
      for (RoundingMode m : modes) {
        BigDecimal c = exact.round(new MathContext(p, m));
        if (Double.parseDouble(c.toString()) == Math.abs(d)) {
          best = c.stripTrailingZeros();
          break;
        }
      }
    }
    String digits = best.unscaledValue().toString();
    int n = digits.length(), decpt = n - best.scale(); // value = 0.DIGITS * 10^decpt
    String s;
    if (decpt <= -4 || decpt > 16) {
      int e = decpt - 1;
      s = digits.charAt(0) + (n > 1 ? "." + digits.substring(1) : "")
          + (e < 0 ? "e-" : "e+") + (Math.abs(e) < 10 ? "0" : "") + Math.abs(e);
    } else if (decpt <= 0) {
      s = "0." + "0".repeat(-decpt) + digits;
    } else if (decpt >= n) {
      s = digits + "0".repeat(decpt - n) + ".0";
    } else {
      s = digits.substring(0, decpt) + "." + digits.substring(decpt);
    }
    return d < 0 ? "-" + s : s;
  }
}
