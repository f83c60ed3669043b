//! The validity times as Zeek reads them: `X509Common::GetTimeFromAsn1` parses the UTCTime or
//! GeneralizedTime text itself (OpenSSL does not check it when it decodes a certificate), quirks included.
//! x509-parser checks the times strictly, so a certificate it refuses for them alone is parsed again with
//! plain times put in their place.

use std::ops::Range;

const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;

/// One DER element of `buf` at `at`: its tag, the range of its content and where it ends.
struct Element {
    tag: u8,
    content: Range<usize>,
}

fn element(buf: &[u8], at: usize) -> Option<Element> {
    let tag = *buf.get(at)?;
    let first = *buf.get(at + 1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = buf.get(at + 2..at + 2 + n)?;
        (bytes.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b)), 2 + n)
    };
    let start = at + header;
    let end = start.checked_add(len)?;
    (end <= buf.len()).then_some(Element { tag, content: start..end })
}

/// Where a certificate's validity lies: the TBS element, the validity element, and the two times.
struct Layout {
    tbs: Range<usize>,
    tbs_content: Range<usize>,
    validity: Range<usize>,
    not_before: Element,
    not_after: Element,
}

/// Each element is read within its parent's content (`der[..end]`), so every range nests.
fn layout(der: &[u8]) -> Option<Layout> {
    let cert = element(der, 0).filter(|e| e.tag == SEQUENCE)?;
    let tbs = element(&der[..cert.content.end], cert.content.start).filter(|e| e.tag == SEQUENCE)?;
    let in_tbs = &der[..tbs.content.end];
    let mut at = tbs.content.start;
    let next = |at: &mut usize| {
        let e = element(in_tbs, *at)?;
        let start = *at;
        *at = e.content.end;
        Some((start, e))
    };
    let (_, first) = next(&mut at)?;
    if first.tag == 0xA0 {
        next(&mut at)?; // the serial after an explicit version
    }
    next(&mut at)?; // signature algorithm
    next(&mut at)?; // issuer
    let (validity_start, validity) = next(&mut at).filter(|(_, e)| e.tag == SEQUENCE)?;
    let in_validity = &der[..validity.content.end];
    let not_before = element(in_validity, validity.content.start)?;
    let not_after = element(in_validity, not_before.content.end)?;
    Some(Layout {
        tbs: cert.content.start..tbs.content.end,
        tbs_content: tbs.content,
        validity: validity_start..validity.content.end,
        not_before,
        not_after,
    })
}

/// `(not_valid_before, not_valid_after)` as Zeek computes them, when the certificate's layout can be read.
pub fn zeek_validity(der: &[u8]) -> Option<(f64, f64)> {
    let l = layout(der)?;
    let time = |e: &Element| zeek_time(e.tag, &der[e.content.clone()]);
    Some((time(&l.not_before), time(&l.not_after)))
}

/// A copy of the certificate with a validity x509-parser takes (1 January 2000, twice) in place of its own.
pub fn with_plain_validity(der: &[u8]) -> Option<Vec<u8>> {
    let l = layout(der)?;
    let plain_time = [&[UTC_TIME, 13][..], b"000101000000Z"].concat();
    let validity = der_element(SEQUENCE, &[plain_time.clone(), plain_time].concat());
    let tbs_content =
        [&der[l.tbs_content.start..l.validity.start], &validity, &der[l.validity.end..l.tbs_content.end]].concat();
    let certificate_content = [&der_element(SEQUENCE, &tbs_content), &der[l.tbs.end..]].concat();
    Some(der_element(SEQUENCE, &certificate_content))
}

fn der_element(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len().to_be_bytes();
    let significant = &len[len.iter().position(|&b| b != 0).unwrap_or(len.len() - 1)..];
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// `GetTimeFromAsn1`: `YYMMDDhhmm[ss]Z` (years below 50 in this century) or `YYYYMMDDhhmm[ss[.f*]][Z|±hhmm]`,
/// fields read digit by digit without checks and normalised by `timegm`. Anything it rejects is 0. Two of
/// its quirks survive here: a UTCTime must end in `Z`, and a `±hhmm` offset of a GeneralizedTime adds
/// `10·h1 + 60·h2 + 10·m1 + m2` seconds.
pub fn zeek_time(tag: u8, text: &[u8]) -> f64 {
    zeek_seconds(tag, text).map_or(0.0, |s| s as f64)
}

fn zeek_seconds(tag: u8, text: &[u8]) -> Option<i64> {
    let mut digits: Vec<u8> = Vec::with_capacity(14);
    let rest = match tag {
        UTC_TIME => {
            if !(11..=17).contains(&text.len()) || text.last() != Some(&b'Z') {
                return None;
            }
            digits.extend_from_slice(if text[0] < b'5' { b"20" } else { b"19" });
            digits.extend_from_slice(&text[..10]);
            &text[10..]
        }
        GENERALIZED_TIME => {
            if !(12..=23).contains(&text.len()) {
                return None;
            }
            digits.extend_from_slice(&text[..12]);
            &text[12..]
        }
        _ => return None,
    };
    let rest = match rest {
        [] | [b'Z' | b'-' | b'+', ..] => {
            digits.extend_from_slice(b"00");
            rest
        }
        [s1, s2, after @ ..] => {
            digits.extend_from_slice(&[*s1, *s2]);
            match after {
                [b'.', fraction @ ..] => {
                    let skipped = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
                    &fraction[skipped..]
                }
                _ => after,
            }
        }
        _ => return None,
    };
    let offset = match rest {
        [] | [b'Z', ..] => 0,
        [sign @ (b'+' | b'-'), h1, h2, m1, m2, ..] => {
            let d = |c: &u8| i64::from(*c) - i64::from(b'0');
            let seconds = d(h1) * 10 + d(h2) * 60 + d(m1) * 10 + d(m2);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let d = |i: usize| i64::from(digits[i]) - i64::from(b'0');
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let mut year = d(0) * 1000 + d(1) * 100 + two(2);
    if year > 1900 {
        year -= 1900;
    }
    // tm_year counts from 1900: a four-digit 1900 is left as it is, i.e. the year 3800.
    let seconds = timegm(year + 1900, two(4) - 1, two(6), two(8), two(10), two(12));
    (seconds != 0).then_some(seconds + offset)
}

/// glibc's `timegm` for a broken-down UTC time whose fields may be out of range (they carry over); Kerberos's
/// times are read with it too.
pub(crate) fn timegm(year: i64, month0: i64, mday: i64, hour: i64, min: i64, sec: i64) -> i64 {
    let year = year + month0.div_euclid(12);
    let month = month0.rem_euclid(12) + 1;
    let days = days_from_civil(year, month) + mday - 1;
    days * 86400 + hour * 3600 + min * 60 + sec
}

/// Days from 1970-01-01 to the first of `month` in `year` (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_get_time_from_asn1_reads_them() {
        let utc = |s: &str| zeek_time(UTC_TIME, s.as_bytes());
        let general = |s: &str| zeek_time(GENERALIZED_TIME, s.as_bytes());
        assert_eq!(utc("250101000000Z"), 1_735_689_600.0);
        assert_eq!(utc("500101000000Z"), -631_152_000.0);
        assert_eq!(utc("491231235959Z"), 2_524_607_999.0);
        // No seconds; seconds 60 and month 13 carry over as timegm does.
        assert_eq!(utc("2501010000Z"), 1_735_689_600.0);
        assert_eq!(utc("991231235960Z"), 946_684_800.0);
        assert_eq!(utc("251301000000Z"), 1_767_225_600.0);
        // A UTCTime must end in Z: offsets, a missing Z, odd lengths give 0.
        assert_eq!(utc("250101000000+0100"), 0.0);
        assert_eq!(utc("250101000000"), 0.0);
        assert_eq!(utc("25010100Z"), 0.0);
        assert_eq!(general("20250101000000.123Z"), 1_735_689_600.0);
        assert_eq!(general("202501010000Z"), 1_735_689_600.0);
        // Zeek's offset arithmetic: +0100 is 60 seconds, -0130 is -(60 + 30).
        assert_eq!(general("20250101000000+0100"), 1_735_689_660.0);
        assert_eq!(general("20250101000000-0130"), 1_735_689_510.0);
        assert_eq!(general("20250101000000+01"), 0.0);
        assert_eq!(general("19000101000000Z"), 57_749_241_600.0);
        assert_eq!(zeek_time(0x04, b"250101000000Z"), 0.0);
        // The epoch itself reads as "no time" (timegm's 0 is taken as failure).
        assert_eq!(utc("700101000000Z"), 0.0);
    }

    #[test]
    fn a_rebuilt_certificate_keeps_everything_but_the_times() {
        let time = |t: &[u8]| [&[UTC_TIME, t.len() as u8][..], t].concat();
        let tbs_parts = [
            vec![0xA0, 3, 2, 1, 2],
            vec![2, 1, 7],
            vec![SEQUENCE, 0],
            vec![SEQUENCE, 0],
            der_element(SEQUENCE, &[time(b"251301000000Z"), time(b"2501010000Z")].concat()),
            vec![SEQUENCE, 0],
        ];
        let tbs = der_element(SEQUENCE, &tbs_parts.concat());
        let der = der_element(SEQUENCE, &[tbs, vec![SEQUENCE, 0], vec![3, 1, 0]].concat());
        assert_eq!(zeek_validity(&der), Some((1_767_225_600.0, 1_735_689_600.0)));
        let plain = with_plain_validity(&der).expect("layout");
        assert_eq!(zeek_validity(&plain), Some((946_684_800.0, 946_684_800.0)));
        assert_eq!(plain.len(), der.len() + 2);
        assert!(plain.ends_with(&[SEQUENCE, 0, SEQUENCE, 0, 3, 1, 0]));
    }
}
