use super::*;

fn when(yaml_like: impl FnOnce(&mut WhenSpec)) -> Condition {
    let mut w = WhenSpec::default();
    yaml_like(&mut w);
    Condition::compile(&w)
}

fn at(hh: i64, mm: i64, weekday_offset_days: i64) -> UtcMoment {
    // 2026-11-23 is a Monday.
    let monday = 1_795_392_000_000i64;
    UtcMoment::from_unix_ms(monday + weekday_offset_days * 86_400_000 + (hh * 60 + mm) * 60_000)
}

#[test]
fn monday_reference_is_monday() {
    assert_eq!(at(0, 0, 0).weekday, 0);
}

#[test]
fn source_cidrs() {
    let c = when(|w| w.source_cidrs = vec!["10.0.0.0/8".into(), "127.0.0.1".into()]);
    let h = HeaderMap::new();
    let l = BTreeMap::new();
    assert_eq!(
        c.check("10.1.2.3".parse().unwrap(), &at(9, 0, 0), &h, &l),
        None
    );
    assert_eq!(
        c.check("127.0.0.1".parse().unwrap(), &at(9, 0, 0), &h, &l),
        None
    );
    assert_eq!(
        c.check("::ffff:10.0.0.1".parse().unwrap(), &at(9, 0, 0), &h, &l),
        None
    );
    assert_eq!(
        c.check("192.168.1.1".parse().unwrap(), &at(9, 0, 0), &h, &l),
        Some(Unmet::SourceCidr)
    );
}

#[test]
fn hours_and_wrapping() {
    let day = when(|w| w.hours_utc = Some("06:00-20:00".into()));
    let night = when(|w| w.hours_utc = Some("22:00-06:00".into()));
    let h = HeaderMap::new();
    let l = BTreeMap::new();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(day.check(ip, &at(6, 0, 0), &h, &l), None);
    assert_eq!(day.check(ip, &at(19, 59, 0), &h, &l), None);
    assert_eq!(day.check(ip, &at(20, 0, 0), &h, &l), Some(Unmet::Hours));
    assert_eq!(day.check(ip, &at(5, 59, 0), &h, &l), Some(Unmet::Hours));
    assert_eq!(night.check(ip, &at(23, 0, 0), &h, &l), None);
    assert_eq!(night.check(ip, &at(3, 0, 0), &h, &l), None);
    assert_eq!(night.check(ip, &at(12, 0, 0), &h, &l), Some(Unmet::Hours));
    assert_eq!(parse_hours("6:00-20:00"), None);
    assert_eq!(parse_hours("06:00-24:00"), Some((360, 1440)));
    assert_eq!(parse_hours("25:00-26:00"), None);
}

#[test]
fn weekdays() {
    let c = when(|w| w.weekdays = vec!["mon".into(), "fri".into()]);
    let h = HeaderMap::new();
    let l = BTreeMap::new();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), None);
    assert_eq!(c.check(ip, &at(9, 0, 4), &h, &l), None);
    assert_eq!(c.check(ip, &at(9, 0, 2), &h, &l), Some(Unmet::Weekday));
    let bad = when(|w| w.weekdays = vec!["someday".into()]);
    assert_eq!(bad.check(ip, &at(9, 0, 0), &h, &l), Some(Unmet::Weekday));
}

#[test]
fn headers_need_exactly_one_equal_value() {
    let c = when(|w| {
        w.headers.insert("X-Purpose".into(), "restock".into());
    });
    let l = BTreeMap::new();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut h = HeaderMap::new();
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), Some(Unmet::Header));
    h.insert("x-purpose", "restock".parse().unwrap());
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), None);
    h.append("x-purpose", "other".parse().unwrap());
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), Some(Unmet::Header));
    let mut wrong = HeaderMap::new();
    wrong.insert("x-purpose", "Restock".parse().unwrap());
    assert_eq!(c.check(ip, &at(9, 0, 0), &wrong, &l), Some(Unmet::Header));
}

#[test]
fn labels() {
    let c = when(|w| {
        w.labels.insert("env".into(), "prod".into());
    });
    let h = HeaderMap::new();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut l = BTreeMap::new();
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), Some(Unmet::Label));
    l.insert("env".to_string(), "prod".to_string());
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), None);
    l.insert("env".to_string(), "dev".to_string());
    assert_eq!(c.check(ip, &at(9, 0, 0), &h, &l), Some(Unmet::Label));
}
