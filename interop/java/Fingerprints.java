// Prints the CRC-64-AVRO (Rabin) fingerprint of Avro schema files, as Apache Avro Java computes it
// (SchemaNormalization.parsingFingerprint64 over the Parsing Canonical Form): the independent reference
// linegate's single-object fingerprints are checked against.
//
//   java -cp "$(interop/fetch-java.sh)/*" interop/java/Fingerprints.java SCHEMA_FILE...
//   java -cp "$(interop/fetch-java.sh)/*" interop/java/Fingerprints.java --spec
//
// Output (TSV), first a line `# Apache Avro Java VERSION`, then for each file two lines:
//   PATH <tab> FINGERPRINT as 16 hex digits, big-endian long <tab> the 8 bytes little-endian (as after C3 01)
//   #PARSING_CANONICAL_FORM            ('#' directly followed by the form; other comments have '# ')
// A file that names a type it does not define is parsed after the sibling .avsc files (same directory)
// whose top-level type has that full name, dependencies first, as one Schema.Parser.
// --spec prints, for test vectors of the Avro specification (share/test/data/schema-tests.txt of the
// Avro repository, plus logical types, whose attributes the canonical form drops):
//   SCHEMA_JSON <tab> CANONICAL_FORM <tab> FINGERPRINT big-endian hex <tab> little-endian bytes hex <tab> ok|MISMATCH
// and exits 1 when a fingerprint differs from the published one.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.util.*;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

public class Fingerprints {
  static final Set<String> PRIMITIVES =
      Set.of("null", "boolean", "int", "long", "float", "double", "bytes", "string");

  // {schema json, published fingerprint (signed decimal) from the Avro test vectors}
  static final String[][] SPEC = {
    {"\"null\"", "7195948357588979594"},
    {"\"boolean\"", "-6970731678124411036"},
    {"\"int\"", "8247732601305521295"},
    {"\"long\"", "-3434872931120570953"},
    {"\"float\"", "5583340709985441680"},
    {"\"double\"", "-8181574048448539266"},
    {"\"bytes\"", "5746618253357095269"},
    {"\"string\"", "-8142146995180207161"},
    {"[\"int\",{\"type\":\"boolean\"}]", "5392556393470105090"},
    {"{\"type\":\"fixed\",\"name\":\"foo\",\"size\":15}", "1756455273707447556"},
    {"{\"fields\":[],\"type\":\"record\",\"name\":\"foo\",\"namespace\":\"x.y\"}", "5916914534497305771"},
    // Published with "default":"true", which Avro Java 1.12 rejects; defaults are not in the canonical form.
    {"{\"fields\":[{\"type\":\"boolean\",\"aliases\":[],\"name\":\"f1\",\"default\":true},"
        + "{\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],"
        + "\"type\":\"record\",\"name\":\"foo\"}", "-4860222112080293046"},
    {"{\"namespace\":\"x.y.z\",\"type\":\"enum\",\"name\":\"foo\",\"doc\":\"foo bar\",\"symbols\":[\"A1\",\"A2\"]}",
        "-4448647247586288245"},
    {"{\"items\":{\"type\":\"null\"},\"type\":\"array\"}", "-589620603366471059"},
    {"{\"values\":\"string\",\"type\":\"map\"}", "-8732877298790414990"},
    {"{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
        "-1759257747318642341"},
    // Logical types: the canonical form is the bare primitive, so the fingerprint is the primitive's.
    {"{\"type\":\"string\",\"logicalType\":\"uuid\"}", "-8142146995180207161"},
    {"{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", "-3434872931120570953"},
    {"{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,\"scale\":2}", "5746618253357095269"},
  };

  public static void main(String[] args) throws Exception {
    System.setProperty("slf4j.internal.verbosity", "ERROR"); // no "no SLF4J providers" warning
    System.out.println("# Apache Avro Java " + Schema.class.getPackage().getImplementationVersion());
    if (args.length == 1 && args[0].equals("--spec")) {
      boolean ok = true;
      for (String[] v : SPEC) {
        Schema s = new Schema.Parser().parse(v[0]);
        long fp = SchemaNormalization.parsingFingerprint64(s);
        boolean match = fp == Long.parseLong(v[1]);
        ok &= match;
        System.out.println(String.join("\t", v[0], SchemaNormalization.toParsingForm(s),
            String.format("%016x", fp), le(fp), match ? "ok" : "MISMATCH"));
      }
      System.exit(ok ? 0 : 1);
    }
    for (String path : args) {
      Schema s = parseWithDependencies(new File(path));
      long fp = SchemaNormalization.parsingFingerprint64(s);
      System.out.println(path + "\t" + String.format("%016x", fp) + "\t" + le(fp));
      System.out.println("#" + SchemaNormalization.toParsingForm(s));
    }
  }

  /** The fingerprint's 8 bytes little-endian, in hex: what single-object encoding puts after C3 01. */
  static String le(long fp) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 8; i++) sb.append(String.format("%02x", (fp >>> (8 * i)) & 0xff));
    return sb.toString();
  }

  /** Parses FILE after the sibling files that define the names it uses but does not define. */
  static Schema parseWithDependencies(File file) throws Exception {
    Map<String, File> byName = new HashMap<>(); // top-level full name -> sibling file
    File[] siblings = file.getAbsoluteFile().getParentFile().listFiles((d, n) -> n.endsWith(".avsc"));
    for (File f : siblings) byName.putIfAbsent(fullName(MAPPER.readTree(f), ""), f);
    List<File> order = new ArrayList<>();
    visit(file.getAbsoluteFile(), byName, new HashSet<>(), order);
    Schema.Parser parser = new Schema.Parser();
    Schema last = null;
    for (File f : order) last = parser.parse(f);
    return last;
  }

  static final ObjectMapper MAPPER = new ObjectMapper();

  // Depth-first: the files FILE depends on, then FILE.
  static void visit(File file, Map<String, File> byName, Set<File> seen, List<File> order) throws Exception {
    if (!seen.add(file)) return;
    Set<String> defined = new HashSet<>(), used = new LinkedHashSet<>();
    names(MAPPER.readTree(file), "", defined, used);
    for (String n : used) {
      File dep = byName.get(n);
      if (!defined.contains(n) && dep != null) visit(dep.getAbsoluteFile(), byName, seen, order);
    }
    order.add(file);
  }

  static String fullName(JsonNode t, String ns) {
    String name = t.path("name").asText("");
    if (name.contains(".")) return name;
    String space = t.has("namespace") ? t.get("namespace").asText() : ns;
    return space.isEmpty() ? name : space + "." + name;
  }

  // Collects the full names a schema defines and the names it uses (resolved against the namespace).
  static void names(JsonNode t, String ns, Set<String> defined, Set<String> used) {
    if (t.isTextual()) {
      String n = t.asText();
      if (!PRIMITIVES.contains(n)) used.add(n.contains(".") || ns.isEmpty() ? n : ns + "." + n);
    } else if (t.isArray()) {
      for (JsonNode b : t) names(b, ns, defined, used);
    } else if (t.isObject()) {
      String type = t.path("type").asText("");
      if (Set.of("record", "error", "enum", "fixed").contains(type)) {
        String full = fullName(t, ns);
        defined.add(full);
        String inner = full.contains(".") ? full.substring(0, full.lastIndexOf('.')) : "";
        for (JsonNode f : t.path("fields")) names(f.get("type"), inner, defined, used);
      } else if (type.equals("array")) {
        names(t.get("items"), ns, defined, used);
      } else if (type.equals("map")) {
        names(t.get("values"), ns, defined, used);
      } else {
        names(t.get("type"), ns, defined, used);
      }
    }
  }
}
