//! Chongqing's 38 区县 (GB/T 2260 codes), the three regions of 一区两群 and the city.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, LazyLock};

/// The entity id of the whole city in score rows and the API.
pub const CITY_CODE: &str = "500000";
/// The city's Chinese name.
pub const CITY_NAME: &str = "重庆市";

/// One of the three regions of Chongqing's 一区两群 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    /// 主城都市区: the 21 districts of the metropolitan area.
    MainUrban,
    /// 渝东北三峡库区城镇群: the 11 districts and counties of the Three Gorges reservoir area.
    Northeast,
    /// 渝东南武陵山区城镇群: the 6 districts and counties of the Wuling mountains.
    Southeast,
}

impl Region {
    /// All regions, in display order.
    pub const ALL: [Region; 3] = [Region::MainUrban, Region::Northeast, Region::Southeast];

    /// The id used in score rows and URLs (`main-urban`, `northeast`, `southeast`).
    pub fn id(self) -> &'static str {
        match self {
            Region::MainUrban => "main-urban",
            Region::Northeast => "northeast",
            Region::Southeast => "southeast",
        }
    }

    /// The Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Region::MainUrban => "主城都市区",
            Region::Northeast => "渝东北三峡库区城镇群",
            Region::Southeast => "渝东南武陵山区城镇群",
        }
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            Region::MainUrban => "Metropolitan area",
            Region::Northeast => "Three Gorges reservoir (northeast)",
            Region::Southeast => "Wuling mountains (southeast)",
        }
    }

    /// Parses a region id as written by [`Region::id`].
    pub fn from_id(id: &str) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.id() == id)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A 区县 of Chongqing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct District {
    /// The 6-digit GB/T 2260 code.
    pub code: u32,
    /// The Chinese name, e.g. 渝中区.
    pub name_zh: &'static str,
    /// The pinyin name, e.g. Yuzhong.
    pub name_pinyin: &'static str,
    /// The region it belongs to.
    pub region: Region,
}

impl District {
    /// The code as the 6-character string used on the wire.
    pub fn code_str(&self) -> String {
        self.code.to_string()
    }
}

const fn d(code: u32, name_zh: &'static str, name_pinyin: &'static str, region: Region) -> District {
    District { code, name_zh, name_pinyin, region }
}

use Region::{MainUrban as M, Northeast as N, Southeast as S};

/// The 38 区县, sorted by code.
pub static DISTRICTS: [District; 38] = [
    d(500101, "万州区", "Wanzhou", N),
    d(500102, "涪陵区", "Fuling", M),
    d(500103, "渝中区", "Yuzhong", M),
    d(500104, "大渡口区", "Dadukou", M),
    d(500105, "江北区", "Jiangbei", M),
    d(500106, "沙坪坝区", "Shapingba", M),
    d(500107, "九龙坡区", "Jiulongpo", M),
    d(500108, "南岸区", "Nan'an", M),
    d(500109, "北碚区", "Beibei", M),
    d(500110, "綦江区", "Qijiang", M),
    d(500111, "大足区", "Dazu", M),
    d(500112, "渝北区", "Yubei", M),
    d(500113, "巴南区", "Banan", M),
    d(500114, "黔江区", "Qianjiang", S),
    d(500115, "长寿区", "Changshou", M),
    d(500116, "江津区", "Jiangjin", M),
    d(500117, "合川区", "Hechuan", M),
    d(500118, "永川区", "Yongchuan", M),
    d(500119, "南川区", "Nanchuan", M),
    d(500120, "璧山区", "Bishan", M),
    d(500151, "铜梁区", "Tongliang", M),
    d(500152, "潼南区", "Tongnan", M),
    d(500153, "荣昌区", "Rongchang", M),
    d(500154, "开州区", "Kaizhou", N),
    d(500155, "梁平区", "Liangping", N),
    d(500156, "武隆区", "Wulong", S),
    d(500229, "城口县", "Chengkou", N),
    d(500230, "丰都县", "Fengdu", N),
    d(500231, "垫江县", "Dianjiang", N),
    d(500233, "忠县", "Zhongxian", N),
    d(500235, "云阳县", "Yunyang", N),
    d(500236, "奉节县", "Fengjie", N),
    d(500237, "巫山县", "Wushan", N),
    d(500238, "巫溪县", "Wuxi", N),
    d(500240, "石柱土家族自治县", "Shizhu", S),
    d(500241, "秀山土家族苗族自治县", "Xiushan", S),
    d(500242, "酉阳土家族苗族自治县", "Youyang", S),
    d(500243, "彭水苗族土家族自治县", "Pengshui", S),
];

/// Looks a district up by its numeric code.
pub fn district(code: u32) -> Option<&'static District> {
    DISTRICTS.binary_search_by_key(&code, |d| d.code).ok().map(|i| &DISTRICTS[i])
}

/// The index of a district in [`DISTRICTS`] (0..38), handy for dense arrays.
pub fn district_index(code: u32) -> Option<usize> {
    DISTRICTS.binary_search_by_key(&code, |d| d.code).ok()
}

/// A district's code as shared text (`"500103"`): the 38 districts' codes are allocated
/// once for the process, as every alert holds one. Another code gets text of its own.
///
/// ```
/// let a = yujing_model::district::code_text(500103);
/// assert_eq!(&*a, "500103");
/// assert!(std::sync::Arc::ptr_eq(&a, &yujing_model::district::code_text(500103)));
/// ```
pub fn code_text(code: u32) -> Arc<str> {
    static CODES: LazyLock<Vec<Arc<str>>> = LazyLock::new(|| DISTRICTS.iter().map(|d| d.code_str().into()).collect());
    match district_index(code) {
        Some(i) => Arc::clone(&CODES[i]),
        None => code.to_string().into(),
    }
}

/// Parses a 6-digit district code as written on the wire.
pub fn parse_district_code(s: &str) -> Option<u32> {
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_complete() {
        assert!(DISTRICTS.windows(2).all(|w| w[0].code < w[1].code));
        let count = |r| DISTRICTS.iter().filter(|d| d.region == r).count();
        assert_eq!(count(Region::MainUrban), 21);
        assert_eq!(count(Region::Northeast), 11);
        assert_eq!(count(Region::Southeast), 6);
        assert_eq!(district(500103).map(|d| d.name_zh), Some("渝中区"));
        assert!(district(500232).is_none());
    }
}
