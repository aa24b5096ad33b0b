// Chinese labels with their English beside them, and small formatting helpers.

/** Labels: key -> [中文, English]. */
export const L = {
  app: ['渝警 · 重庆地方金融风险预警', 'yujing · Chongqing financial early warning'],
  riskMap: ['风险地图', 'Risk map'],
  alertDesk: ['预警台', 'Alert desk'],
  audit: ['审计', 'Audit'],
  token: ['令牌', 'Token'],
  signIn: ['登录', 'Sign in'],
  signOut: ['退出', 'Sign out'],
  signedInAs: ['当前身份', 'Signed in as'],
  tokenHelp: ['粘贴 yujing demo 打印的令牌', 'Paste the token that yujing demo prints'],
  region: ['区域', 'Region'],
  sector: ['行业', 'Sector'],
  period: ['期间', 'Period'],
  allRegions: ['全市', 'Whole city'],
  allSectors: ['全部行业', 'All sectors'],
  legend: ['图例', 'Legend'],
  noData: ['无数据', 'No data'],
  district: ['区县', 'District'],
  districts: ['区县', 'Districts'],
  institutions: ['机构', 'Institutions'],
  institution: ['机构', 'Institution'],
  score: ['得分', 'Score'],
  grade: ['等级', 'Grade'],
  exposure: ['风险敞口', 'Exposure'],
  nplRatio: ['不良率', 'NPL ratio'],
  payoutRate: ['代偿率', 'Payout rate'],
  complaints: ['投诉件数', 'Complaints'],
  lendersUnpaid: ['未兑付出借人', 'Unpaid lenders'],
  count: ['数量', 'Count'],
  clickDistrict: ['点击地图上的区县查看其机构', 'Click a district on the map to list its institutions'],
  topContributors: ['主要风险来源', 'Top contributors'],
  history: ['得分走势', 'Score history'],
  breakdown: ['得分构成', 'Score breakdown'],
  indicator: ['指标', 'Indicator'],
  value: ['数值', 'Value'],
  cutoffs: ['安全 → 危险', 'Safe → critical'],
  subScore: ['分项得分', 'Sub-score'],
  weight: ['权重', 'Weight'],
  points: ['贡献分', 'Points'],
  base: ['基础得分（加权和）', 'Base score (weighted sum)'],
  trend: ['趋势加分', 'Trend points'],
  composite: ['综合得分（上限 100）', 'Composite (at most 100)'],
  alerts: ['预警', 'Alerts'],
  severity: ['级别', 'Severity'],
  state: ['状态', 'State'],
  mechanism: ['处置机制', 'Mechanism'],
  entity: ['对象', 'Entity'],
  owner: ['责任方', 'Owner'],
  assignee: ['承办人', 'Assignee'],
  respondBy: ['响应期限', 'Respond by'],
  opened: ['发生期间', 'Opened'],
  evidence: ['依据', 'Evidence'],
  actions: ['操作', 'Actions'],
  ack: ['确认', 'Acknowledge'],
  assign: ['指派', 'Assign'],
  resolve: ['办结', 'Resolve'],
  note: ['办结说明', 'Resolution note'],
  submit: ['提交', 'Submit'],
  cancel: ['取消', 'Cancel'],
  forwarded: ['已转交持有该预警的实例处理，处理后显示', 'Handed to the instance that holds this alert; it shows once applied'],
  any: ['全部', 'Any'],
  filter: ['筛选', 'Filter'],
  more: ['加载更多', 'Load more'],
  total: ['共', 'Total'],
  back: ['返回地图', 'Back to the map'],
  loading: ['加载中…', 'Loading…'],
  none: ['无', 'None'],
  since: ['起始日期', 'Since'],
  city: ['全市', 'City'],
  when: ['时间', 'When'],
  actor: ['操作人', 'Actor'],
  action: ['动作', 'Action'],
  detail: ['详情', 'Detail'],
  alertId: ['预警编号', 'Alert id'],
  noteRequired: ['办结须填写说明', 'A resolution needs a note'],
  forbidden: ['无权处置此预警', 'Your role may not act on this alert'],
};

export const GRADES = {
  normal: ['正常', 'Normal'],
  blue: ['蓝色', 'Blue'],
  yellow: ['黄色', 'Yellow'],
  orange: ['橙色', 'Orange'],
  red: ['红色', 'Red'],
};

export const SECTORS = {
  bank: ['银行', 'Banks'],
  microloan: ['小额贷款公司', 'Microloan companies'],
  guarantee: ['融资担保公司', 'Financing guarantors'],
  p2p_residual: ['网贷存量风险', 'Closed P2P platforms'],
  all: ['全部行业', 'All sectors'],
};

export const REGIONS = {
  'main-urban': ['主城都市区', 'Metropolitan area'],
  northeast: ['渝东北三峡库区城镇群', 'Three Gorges reservoir (northeast)'],
  southeast: ['渝东南武陵山区城镇群', 'Wuling mountains (southeast)'],
};

export const STATES = {
  open: ['待处置', 'Open'],
  acknowledged: ['已确认', 'Acknowledged'],
  resolved: ['已办结', 'Resolved'],
  'auto-resolved': ['自动解除', 'Auto-resolved'],
  superseded: ['已被更正', 'Superseded'],
};

export const MECHANISMS = {
  'central-local-coordination': ['央地监管协同', 'Central-local supervisory coordination'],
  'one-case-one-plan-one-team': ['一事一案一专班', 'One case, one plan, one task force'],
  'guarantee-risk-sharing': ['风险分担与代偿补偿', 'Guarantee risk sharing and payout compensation'],
  'exit-mechanism': ['地方金融组织退出机制', 'Exit mechanism for local financial organisations'],
  'internet-finance-legacy': ['互联网金融遗留问题接续化解', 'Wind-down of closed P2P platforms'],
  'grid-management': ['非法集资网格化管理', 'Grid management of illegal fundraising'],
  'reporting-discipline': ['监管数据报送', 'Timely and truthful reporting'],
  'district-concentration': ['区域性风险防控', 'Regional risk prevention'],
};

/** Indicators: [中文, English, format] where format is pct, x (times) or n (number). */
export const INDICATORS = {
  npl_ratio: ['不良贷款率', 'NPL ratio', 'pct'],
  special_mention_ratio: ['关注类贷款占比', 'Special-mention ratio', 'pct'],
  provision_coverage: ['拨备覆盖率', 'Provision coverage', 'pct'],
  capital_adequacy_ratio: ['资本充足率', 'Capital adequacy', 'pct'],
  concentration: ['集中度', 'Concentration', 'pct'],
  leverage: ['杠杆倍数', 'Leverage', 'x'],
  payout_rate: ['代偿率', 'Payout rate', 'pct'],
  recovery_rate: ['代偿回收率', 'Recovery rate', 'pct'],
  repayment_progress: ['兑付进度', 'Repayment progress', 'pct'],
  stall: ['兑付停滞度', 'Repaid this period', 'pct'],
  complaints_per_1000_lenders: ['千名出借人投诉', 'Complaints per 1,000 lenders', 'n'],
  score: ['综合得分', 'Composite score', 'n'],
};

/** Escapes text for HTML. */
export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** A bilingual label as HTML: 中文 with the English beside it. */
export function bi(pair) {
  if (!pair) return '';
  return `<span class="zh">${esc(pair[0])}</span> <span class="en">${esc(pair[1])}</span>`;
}

/** A bilingual label as plain text ("风险地图 Risk map"). */
export function biText(pair) {
  return pair ? `${pair[0]} ${pair[1]}` : '';
}

/** Looks a code up in a table, falling back to the code itself. */
export function lookup(table, code) {
  return table[code] || [code, code];
}

/** Formats an indicator value. */
export function fmtIndicator(name, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  const kind = (INDICATORS[name] || [])[2] || 'n';
  if (kind === 'pct') return `${(v * 100).toFixed(2)}%`;
  if (kind === 'x') return `${v.toFixed(2)}×`;
  return Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** Formats an amount in yuan as 亿元 (100 million yuan). */
export function fmtYi(v) {
  if (v === null || v === undefined) return '—';
  return `${(v / 1e8).toLocaleString('en-US', { maximumFractionDigits: 2 })} 亿元`;
}

/** Formats a score. */
export function fmtScore(v) {
  return v === null || v === undefined ? '—' : Number(v).toFixed(1);
}

/** Formats an RFC 3339 time as its date and minutes. */
export function fmtTime(s) {
  if (!s) return '—';
  return String(s).replace('T', ' ').slice(0, 16);
}
