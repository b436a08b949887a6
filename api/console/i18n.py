"""The console's words in Simplified Chinese and English."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    # key: (zh-CN, en)
    "title": ("OceanMart 定价控制台", "OceanMart pricing console"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "admin_key": ("管理员 API 密钥", "Admin API key"),
    "sign_in_hint": (
        "使用具有 admin 权限的 API 密钥登录;会话保存在仅限 HTTP 的 Cookie 中。",
        "Sign in with an API key that has the admin scope; the session lives in an "
        "HttpOnly cookie.",
    ),
    "not_admin": ("该密钥没有 admin 权限。", "This key does not have the admin scope."),
    "bad_key": ("密钥无效、已过期或已吊销。", "The key is invalid, expired or revoked."),
    "dashboard": ("概览", "Overview"),
    "products": ("产品与价格", "Products and prices"),
    "orders": ("订单", "Orders"),
    "revenue": ("收入", "Revenue"),
    "accounts": ("账户与密钥", "Accounts and keys"),
    "product": ("产品", "Product"),
    "theme": ("主题", "Theme"),
    "provider": ("提供方", "Provider"),
    "price_book": ("价格表", "Price book"),
    "version": ("版本", "Version"),
    "no_book": ("尚未定价", "not priced yet"),
    "edit": ("编辑", "Edit"),
    "save": ("保存为新版本", "Save as a new version"),
    "saved": ("已保存价格表版本", "Saved price book version"),
    "unchanged": ("价格规则未变化,未创建新版本", "Rules unchanged; no new version"),
    "currency": ("币种", "Currency"),
    "base_fee": ("每单基础费(分)", "Base fee per order (minor units)"),
    "rate_per_million_cells": ("每百万数据单元费率(分)", "Rate per million cells (minor units)"),
    "rate_per_mb": ("每 MB 费率(分)", "Rate per MB (minor units)"),
    "minimum_charge": ("最低收费(分)", "Minimum charge (minor units)"),
    "monthly_free_cells": ("每月免费数据单元", "Monthly free cells"),
    "download_days": ("下载有效期(天)", "Download period (days)"),
    "quote_ttl_minutes": ("报价有效期(分钟)", "Quote validity (minutes)"),
    "provider_share_pct": ("提供方分成(%)", "Provider share (%)"),
    "advanced": ("其他规则(JSON)", "Other rules (JSON)"),
    "advanced_hint": (
        "变量系数、时间跨度、抽样与分辨率折扣、许可、客户等级、批量、组件与订阅。",
        "Variable multipliers, time span, stride and resolution discounts, licenses, "
        "customer tiers, volume tiers, components and subscriptions.",
    ),
    "note": ("变更说明", "Note (why the prices changed)"),
    "preview": ("报价预览", "Quote preview"),
    "preview_hint": (
        "修改上方规则即可实时查看示例选择的报价(尚未保存)。",
        "Change the rules above to see quotes for example selections live (not saved yet).",
    ),
    "custom_selection": ("自定义选择(JSON)", "Custom selection (JSON)"),
    "example": ("示例", "Example"),
    "cells": ("数据单元", "Cells"),
    "current": ("当前版本", "Current"),
    "draft": ("草稿", "Draft"),
    "commercial": ("商业", "Commercial"),
    "research": ("科研", "Research"),
    "government": ("政府", "Government"),
    "lines": ("明细", "Line items"),
    "total": ("合计", "Total"),
    "ex_small": ("东海 10°x10° 区域", "East China Sea box 10°x10°"),
    "ex_large": ("西北太平洋 40°x40°", "North-west Pacific 40°x40°"),
    "ex_whole": ("整个产品", "The whole product"),
    "ex_stride": ("全球每隔 4 个格点", "Global, every 4th cell"),
    "ex_sub": ("订阅一个月", "Subscription, one month"),
    "invalid_rules": ("规则无效", "Invalid rules"),
    "status": ("状态", "Status"),
    "account": ("账户", "Account"),
    "amount": ("金额", "Amount"),
    "created": ("创建时间", "Created"),
    "payment": ("支付方式", "Payment"),
    "offer": ("类型", "Offer"),
    "all": ("全部", "All"),
    "net": ("净收入", "Net"),
    "provider_share": ("提供方分成", "Provider share"),
    "orders_count": ("订单数", "Orders"),
    "by_product": ("按产品", "By product"),
    "by_theme": ("按主题", "By theme"),
    "last_30_days": ("最近 30 天", "Last 30 days"),
    "download_csv": ("下载 CSV", "Download CSV"),
    "kind": ("类型", "Kind"),
    "tier": ("客户等级", "Customer tier"),
    "balance": ("余额", "Balance"),
    "keys": ("密钥", "Keys"),
    "scopes": ("权限", "Scopes"),
    "grant_credits": ("发放预付额度", "Grant credits"),
    "amount_major": ("金额(元/美元)", "Amount (major units)"),
    "granted": ("已发放", "Granted"),
    "create_key": ("创建密钥", "Create key"),
    "new_key": ("新密钥(仅显示一次)", "New key (shown once)"),
    "revoke": ("吊销", "Revoke"),
    "revoked": ("已吊销", "revoked"),
    "active": ("有效", "active"),
    "set_tier": ("设置等级", "Set tier"),
    "tier_saved": ("已设置客户等级", "Customer tier set"),
    "products_count": ("已发布产品", "Published products"),
    "fulfilled_orders": ("已完成订单", "Fulfilled orders"),
    "signer": ("报价签名地址", "Quote signer address"),
    "none": ("无", "none"),
    "language": ("English", "中文"),
}


def translator(lang: str) -> dict[str, str]:
    """The words of one language, by key."""
    i = 0 if lang == "zh" else 1
    return {k: v[i] for k, v in TEXT.items()}


def pick_language(query: str | None, cookie: str | None, accept: str | None) -> str:
    """``?lang=`` first, then the remembered choice, then the browser's preference."""
    for choice in (query, cookie):
        if choice in LANGS:
            return choice
    return "zh" if accept and accept.lower().startswith("zh") else "en"
