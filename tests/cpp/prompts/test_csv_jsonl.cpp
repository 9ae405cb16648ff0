// CSV and JSONL readers on hand-written inputs with the awkward cases of the
// real files: byte-order mark, CRLF, embedded newlines and quotes, empty
// trailing columns.

#include <catch2/catch.hpp>

#include <fstream>

#include "medfair/error.hpp"
#include "medfair/io/csv.hpp"
#include "medfair/io/jsonl.hpp"
#include "test_support.hpp"

using namespace medfair::io;

TEST_CASE("csv keeps fields exact", "[io][csv]") {
  std::string text =
      "\xEF\xBB\xBFtitle,Case one liner,DDx,,\r\n"
      "Chest pain - 01,\"A 50-year-old @Race @Sex  with \"\"crushing\"\" pain. \",\"Angina,\nPericarditis,\n\",,\r\n"
      " spaced , x ,\"\",,\r\n";
  CsvTable table = parse_csv(text, "mem.csv");
  REQUIRE(table.header().size() == 5);
  CHECK(table.header()[0] == "title");
  CHECK(table.header()[3].empty());
  REQUIRE(table.row_count() == 2);
  CHECK(table.cell(0, 1) == "A 50-year-old @Race @Sex  with \"crushing\" pain. ");
  CHECK(table.cell(0, 2) == "Angina,\nPericarditis,\n");
  CHECK(table.cell(0, 4).empty());
  CHECK(table.cell(1, 0) == " spaced ");
  CHECK(table.cell(1, 1) == " x ");
  CHECK(table.cell(1, 2).empty());
  CHECK(table.require_column("DDx") == 2);
}

TEST_CASE("csv positions account for quotes", "[io][csv]") {
  std::string text = "a,b\n1,\"say \"\"hi\"\" @Sex\"\n\"x\ny\",\"two\nlines @Race\"\n";
  CsvTable table = parse_csv(text, "mem.csv");
  // '@' of @Sex: the quote is at column 3, then 'say ""hi"" ' takes 11 raw bytes.
  auto position = table.position(0, 1, std::string("say \"hi\" ").size());
  CHECK(position.line == 2);
  CHECK(position.column == 15);
  // Row 2 starts on line 3; its second field opens with a quote on line 4.
  auto second = table.position(1, 1, std::string("two\nlines ").size());
  CHECK(second.line == 5);
  CHECK(second.column == 7);
  CHECK(table.where(1, 1) == "mem.csv:4:5: row 2, column \"b\"");
}

TEST_CASE("csv lf and crlf agree", "[io][csv]") {
  std::string lf = "a,b\n1,\"x\ny\"\n2,z\n";
  std::string crlf = "a,b\r\n1,\"x\ny\"\r\n2,z\r\n";
  auto one = parse_csv(lf, "lf.csv");
  auto two = parse_csv(crlf, "crlf.csv");
  CHECK(one.rows() == two.rows());
  CHECK(one.row_count() == 2);
}

TEST_CASE("csv missing column names fix", "[io][csv]") {
  CsvTable table = parse_csv("a,b\n1,2\n", "mem.csv");
  CHECK_THROWS_AS(table.require_column("c"), medfair::DataError);
  CHECK_THROWS_WITH(table.require_column("c"), Catch::Contains("missing column \"c\" (the header has \"a\", \"b\")"));
}

TEST_CASE("utf8 check finds position", "[io][csv]") {
  CHECK_NOTHROW(require_valid_utf8("caf\xC3\xA9", "x"));
  CHECK_THROWS_WITH(require_valid_utf8("ok\n\xC3\xA9t\xC0\xAF", "f.txt"), Catch::Contains("f.txt:2:3: invalid UTF-8 (byte 0xC0"));
}

TEST_CASE("jsonl round trip", "[io][jsonl]") {
  auto dir = medfair::test::scratch_dir("jsonl");
  std::vector<nlohmann::ordered_json> values = {{{"b", 1}, {"a", "caf\xC3\xA9\nline"}}, {{"z", nlohmann::ordered_json::array()}}};
  write_jsonl(dir / "out.jsonl", values);
  auto records = read_jsonl(dir / "out.jsonl");
  REQUIRE(records.size() == 2);
  CHECK(records[0].line == 1);
  CHECK(records[0].value["a"] == "caf\xC3\xA9\nline");
  CHECK(to_jsonl_line(values[0]) == "{\"b\":1,\"a\":\"caf\xC3\xA9\\nline\"}");
  auto parsed = parse_jsonl("\xEF\xBB\xBF{\"a\":1}\r\n\r\n{\"a\":2}\n", "mem.jsonl");
  REQUIRE(parsed.size() == 2);
  CHECK(parsed[1].line == 3);
}

// Found by fuzz_jsonl: a number beyond the range of double made parse_jsonl
// throw nlohmann's out_of_range instead of FormatError. The fuzzer's input is
// kept in tests/fuzz/regressions/.
TEST_CASE("jsonl number overflow", "[io][jsonl]") {
  CHECK_THROWS_AS(parse_jsonl("{\"a\": 1}\n{\"x\": 1e999}\n", "n.jsonl"), medfair::FormatError);
  CHECK_THROWS_WITH(parse_jsonl("{\"a\": 1}\n{\"x\": 1e999}\n", "n.jsonl"),
                    Catch::Contains("n.jsonl:2: invalid JSON") && Catch::Contains("number overflow parsing '1e999'"));

  const auto fuzz_input = std::filesystem::path(MEDFAIR_SOURCE_DIR) / "tests/fuzz/regressions/jsonl_number_overflow.jsonl";
  CHECK_THROWS_AS(read_jsonl(fuzz_input), medfair::FormatError);
  CHECK_THROWS_WITH(read_jsonl(fuzz_input), Catch::Contains("jsonl_number_overflow.jsonl:4: invalid JSON"));
}
