/* Unit tests of the metrics text (loader/metrics_http.h): that every family has its HELP
 * and TYPE lines before its samples and every line has the exposition format's shape,
 * that counters end in _total and figures are in base units (seconds, bytes), that the
 * daemon-wide totals and each session's figures carry the values given, that label values
 * are escaped (and bytes that are not UTF-8 replaced, since they would make a scraper
 * drop the whole page), and which listen addresses are accepted. */
#include "testutil.h"

#include "metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

static tp_server_session sessions[2];

static tp_server_figures figures(size_t nsessions)
{
    tp_server_figures f = {
        .uptime_s = 12.5, .start_time = 1.7e9, .memory_budget = (uint64_t)4 << 30,
        .memory_used = 1048576, .idle_rings = 3, .idle_ring_bytes = 524288,
        .rings_reused = 11,
        .pipe = {.reads = 77, .bytes_read = 123456789, .page_cache_reads = 70,
                 .page_cache_misses = 6, .io_queued = 3, .io_in_flight = 4, .decode_queued = 5,
                 .tasks_done = 70, .decode_ns = 2500000000u,
                 .threads = 2, .backend = "io_uring"},
        .total = {.sessions = 9, .batches = 40, .samples = 1234, .skipped = 6, .errors = 7,
                  .bytes_read = 99, .starved_us = 1500000, .in_flight = 2},
        .sessions = sessions, .nsessions = nsessions};
    sessions[0] = (tp_server_session){.id = 41, .rank = 1, .world = 2, .age_s = 2,
                                      .ring_bytes = 65536,
                                      .c = {.samples = 300, .batches = 10, .errors = 1,
                                            .starved_us = 250000, .in_flight = 2}};
    snprintf(sessions[0].dataset, sizeof(sessions[0].dataset), "imagenet/train");
    sessions[1] = (tp_server_session){.id = 42, .world = 1, .age_s = 1};
    snprintf(sessions[1].dataset, sizeof(sessions[1].dataset), "a\"b\\c\nd\xff" "e\xc3\xa9");
    return f;
}

static char *format(size_t nsessions)
{
    tp_server_figures f = figures(nsessions);
    tp_metrics_process p = {.resident_bytes = 8192, .virtual_bytes = 16384, .cpu_seconds = 0.25};
    char *text;
    size_t len;
    ck_assert_int_eq(tp_metrics_format(&f, &p, &text, &len), 0);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* Checks one sample line against the family announced last: same name, and labels in
 * the shape {k="v",...} with nothing but escapes after a backslash. */
static void check_sample(const char *line, const char *family)
{
    size_t n = strlen(family);
    ck_assert_msg(!strncmp(line, family, n) && (line[n] == ' ' || line[n] == '{'),
                  "sample '%s' outside its family %s", line, family);
    const char *p = line + n;
    if (*p == '{') {
        while (*p != '}') {
            p++;
            p += strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            ck_assert_msg(p[0] == '=' && p[1] == '"', "bad label in '%s'", line);
            for (p += 2; *p != '"'; p++)
                if (*p == '\\')
                    ck_assert_msg(strchr("\\\"n", *++p), "bad escape in '%s'", line);
            p++;
            ck_assert_msg(*p == ',' || *p == '}', "bad labels in '%s'", line);
        }
        p++;
    }
    char *end;
    ck_assert_msg(*p == ' ', "no value in '%s'", line);
    strtod(p + 1, &end);
    ck_assert_msg(end > p + 1 && *end == '\0', "bad value in '%s'", line);
}

START_TEST(test_shape)
{
    char *text = format(2);
    char family[128] = "", type[16] = "";
    int families = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (sscanf(line, "# HELP %127s", name) == 1) {
            snprintf(family, sizeof(family), "%s", name);
            type[0] = '\0';
            families++;
        } else if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
            ck_assert_str_eq(name, family);
            ck_assert_msg(!strcmp(type, "counter") || !strcmp(type, "gauge"), "%s", type);
            size_t n = strlen(name);
            bool total = n > 6 && !strcmp(name + n - 6, "_total");
            ck_assert_msg(total == !strcmp(type, "counter"), "%s is a %s", name, type);
        } else {
            ck_assert_msg(type[0], "sample before its TYPE line: %s", line);
            check_sample(line, family);
        }
    }
    ck_assert_int_ge(families, 30);
    free(text);
}
END_TEST

START_TEST(test_values)
{
    char *text = format(2);
    const char *daemon[] = {
        "turbopump_samples_total 1234",
        "turbopump_sessions_total 9",
        "turbopump_sessions 2",
        "turbopump_errors_total 7",
        "turbopump_skipped_samples_total 6",
        "turbopump_client_starved_seconds_total 1.5",
        "turbopump_decode_seconds_total 2.5",
        "turbopump_decode_tasks_total 70",
        "turbopump_io_read_bytes_total 123456789",
        "turbopump_io_reads_total 77",
        "turbopump_io_page_cache_reads_total 70",
        "turbopump_io_page_cache_misses_total 6",
        "turbopump_io_queued_reads 3",
        "turbopump_io_in_flight_reads 4",
        "turbopump_decode_queued_tasks 5",
        "turbopump_ring_memory_budget_bytes 4294967296",
        "turbopump_ring_memory_used_bytes 1048576",
        "turbopump_idle_rings 3",
        "turbopump_idle_ring_bytes 524288",
        "turbopump_rings_reused_total 11",
        "process_resident_memory_bytes 8192",
        "process_start_time_seconds 1700000000",
        "turbopump_uptime_seconds 12.5",
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(daemon); i++)
        ck_assert_msg(has_line(text, daemon[i]), "no line %s", daemon[i]);
    const char *l = "{session=\"41\",dataset=\"imagenet/train\",rank=\"1\",world=\"2\"}";
    char line[256];
    const char *want[][2] = {{"samples_total", "300"}, {"batches_total", "10"},
                             {"errors_total", "1"}, {"client_starved_seconds_total", "0.25"},
                             {"batches_in_flight", "2"}, {"ring_bytes", "65536"},
                             {"samples_per_second", "150"}, {"skipped_samples_total", "0"}};
    for (size_t i = 0; i < TP_ARRAY_LEN(want); i++) {
        snprintf(line, sizeof(line), "turbopump_session_%s%s %s", want[i][0], l, want[i][1]);
        ck_assert_msg(has_line(text, line), "no line %s", line);
    }
    free(text);
}
END_TEST

START_TEST(test_escaping)
{
    char *text = format(2);
    ck_assert_ptr_nonnull(strstr(text, "turbopump_session_samples_total{session=\"42\","
                                       "dataset=\"a\\\"b\\\\c\\nd\xef\xbf\xbd" "e\xc3\xa9\","
                                       "rank=\"0\",world=\"1\"} 0\n"));
    free(text);
}
END_TEST

START_TEST(test_no_sessions)
{
    char *text = format(0);
    ck_assert(has_line(text, "turbopump_sessions 0"));
    ck_assert(has_line(text, "# TYPE turbopump_session_samples_total counter"));
    ck_assert_ptr_null(strstr(text, "turbopump_session_samples_total{"));
    free(text);
}
END_TEST

static int address(const char *spec, bool public_ok, struct sockaddr_storage *a)
{
    tp_error err = {0};
    int rc = tp_metrics_address(spec, public_ok, a, &err);
    ck_assert(rc == 0 || err.msg[0]);
    return rc;
}

START_TEST(test_address)
{
    struct sockaddr_storage a;
    ck_assert_int_eq(address("127.0.0.1:9100", false, &a), 0);
    ck_assert_int_eq(a.ss_family, AF_INET);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&a)->sin_port), 9100);
    ck_assert_int_eq(address("9100", false, &a), 0);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr), 0x7f000001u);
    ck_assert_int_eq(address(":0", false, &a), 0);
    ck_assert_int_eq(address("127.1.2.3:80", false, &a), 0);
    ck_assert_int_eq(address("[::1]:9100", false, &a), 0);
    ck_assert_int_eq(a.ss_family, AF_INET6);
    ck_assert_int_eq(address("localhost:9100", false, &a), 0);
    ck_assert_int_eq(address("0.0.0.0:9100", false, &a), TP_EUSAGE);
    ck_assert_int_eq(address("[::]:9100", false, &a), TP_EUSAGE);
    ck_assert_int_eq(address("10.1.2.3:9100", false, &a), TP_EUSAGE);
    ck_assert_int_eq(address("0.0.0.0:9100", true, &a), 0);
    const char *bad[] = {"", "host:", "127.0.0.1:65536", "127.0.0.1:12a", "[::1:9100",
                         "[::1]9100", "127.0.0.1:-1", "127.0.0.1:123456"};
    for (size_t i = 0; i < TP_ARRAY_LEN(bad); i++)
        ck_assert_msg(address(bad[i], true, &a) == TP_EUSAGE, "accepted '%s'", bad[i]);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_add_test(tc, test_shape);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_no_sessions);
    suite_add_tcase(s, tc);
    tc = tcase_create("address");
    tcase_add_test(tc, test_address);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(metrics_suite()); }
