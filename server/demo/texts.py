"""What the demo's citizens say, and what the grid workers answer.

Written for the demo — none of this comes from real tickets. Each :class:`Topic` is one kind
of request a 12345 hotline sends down to the grids, with a few ways a caller puts it and a
few ways a worker reports the result; :func:`compose` fills in the place and the details so
three thousand tickets do not read like three.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topic:
    category: str
    #: consultation, help, complaint, report or suggestion (the API's ``type``).
    type: str
    #: Relative weights of normal, urgent and emergency.
    urgency: tuple[int, int, int]
    #: "urban" (communities), "rural" (villages) or "any".
    where: str
    weight: int
    titles: tuple[str, ...]
    contents: tuple[str, ...]
    replies: tuple[str, ...]
    #: Where a unit answers itself (a policy question), no grid worker goes out.
    desk: bool = False
    #: About someone's home or building (heating, corridors): the place is an address, not
    #: a spot outdoors.
    indoor: bool = False


TOPICS: tuple[Topic, ...] = (
    Topic(
        "municipal.streetlight", "complaint", (9, 1, 0), "any", 10,
        ("{place}路灯不亮", "{place}一带路灯损坏", "{place}路灯夜间不亮存在安全隐患"),
        ("反映{place}一带的路灯已经{days}天不亮了，晚上{hour}点以后路上漆黑一片，老人孩子出行"
         "很不安全，希望尽快维修。",
         "{place}有{n}盏路灯坏了，有的一直不亮，有的忽明忽暗，前些天已经有居民晚上摔倒，"
         "请相关部门尽快处理。",
         "来电人称{place}附近路灯自上周起就不亮，曾向物业反映，物业说不归他们管，"
         "请求协调维修。"),
        ("经网格员现场核实，路灯控制箱线路老化导致不亮，已联系路灯管理所更换线路，"
         "当晚路灯恢复正常，已电话告知来电人。",
         "现场查看共{n}盏路灯灯泡损坏，已报修并于次日全部更换完毕，夜间复查照明正常。",
         "该处路灯属小区自管，已督促物业公司更换灯具，现已修复。"),
    ),
    Topic(
        "municipal.manhole", "report", (4, 5, 1), "any", 6,
        ("{place}井盖缺失", "{place}井盖破损有人险些掉入", "{place}雨水井盖松动"),
        ("{place}路边有一个井盖丢失了，现在只用几块砖头挡着，来往车辆和行人很容易掉进去，"
         "请尽快处理。",
         "{place}的污水井盖破了一个大洞，今天早上{hour}点多有个孩子差点踩进去，"
         "请赶紧派人来看看。",
         "反映{place}井盖松动，车一压就哐哐响，晚上吵得睡不着，也怕出危险。"),
        ("网格员到场后先设置警示标志围挡，已通知排水公司于当日补装新井盖，隐患已消除。",
         "经核实为通信井盖，已联系产权单位更换为防坠落井盖，现场已恢复通行。",
         "已协调市政养护单位对松动井盖重新座浆固定，车辆碾压不再有响声。"),
    ),
    Topic(
        "cityadmin.street_vending", "complaint", (10, 0, 0), "urban", 7,
        ("{place}占道经营", "{place}早市摊贩占用人行道", "{place}商户店外经营"),
        ("{place}每天早上{hour}点左右就有商贩占用人行道摆摊卖菜卖水果，行人只能走机动车道，"
         "非常危险，希望管一管。",
         "反映{place}的几家饭店把桌椅摆到人行道上，晚上吃烧烤的人很多，油烟大、垃圾多，"
         "走路都过不去。",
         "{place}流动摊贩聚集，堵塞消防通道和出入口，多次反映一直没有解决。"),
        ("网格员会同街道综合执法队到场劝离占道摊贩，引导至便民市场经营，并将每日巡查。",
         "已对店外经营商户下发整改告知书，桌椅已全部收回店内，后续纳入网格日常巡查。",
         "现场处理后摊贩已撤离，已在该处设置提示牌，早高峰安排网格员值守。"),
    ),
    Topic(
        "environment.noise", "complaint", (10, 0, 0), "any", 8,
        ("{place}夜间施工噪音扰民", "{place}广场舞音响声音过大", "{place}商铺噪音扰民"),
        ("{place}附近的工地每天晚上{late}点以后还在施工，机器声音特别大，严重影响休息，"
         "请相关部门查处。",
         "反映{place}每天晚上有人跳广场舞，音响开得很大，一直到九点多，家里有高三学生，"
         "希望协调把音量调小。",
         "{place}有家商铺门口放大喇叭招揽顾客，从早到晚循环播放，周边居民意见很大。"),
        ("经核实该工地未办理夜间施工许可，已联系执法部门责令停止夜间施工，施工方已承诺整改。",
         "网格员与广场舞队负责人沟通，已约定音量控制和结束时间，并张贴了文明提示。",
         "已对商铺进行劝导，喇叭已撤除，商户承诺不再外放。"),
    ),
    Topic(
        "utilities.heating", "help", (6, 4, 0), "urban", 9,
        ("{place}供暖温度不达标", "{place}暖气不热", "{place}供暖管道漏水"),
        ("家住{place}，今年供暖以来室内温度只有{temp}度左右，暖气片上热下凉，"
         "家里有老人孩子，希望供热公司尽快来检修。",
         "反映{place}整个单元暖气都不热，缴了取暖费却受冻，打供热公司电话一直占线。",
         "{place}楼道暖气管道漏水，水都流到楼梯上结了冰，很容易滑倒，请尽快处理。"),
        ("已协调供热公司入户测温，室温{temp}度，对单元立管进行放风排气后复测达到18度以上，"
         "居民表示认可。",
         "经查为小区换热站循环泵故障，已维修完毕，网格员已逐户回访确认温度达标。",
         "供热公司已派维修人员到场，更换了漏水阀门并清理楼道积水结冰，供暖恢复正常。"),
        indoor=True,
    ),
    Topic(
        "fire.corridor_clutter", "report", (8, 2, 0), "urban", 6,
        ("{place}楼道堆放杂物", "{place}楼道内停放电动车充电", "{place}楼道堆物存在消防隐患"),
        ("{place}楼道里长期堆放纸箱、旧家具和杂物，把楼梯都占了一半，存在严重的消防隐患。",
         "反映{place}有住户把电动车推进楼道里充电，电线从窗户拉出来，太危险了。",
         "{place}一楼住户在楼道里堆了很多废品，气味难闻，还招老鼠蟑螂。"),
        ("网格员入户宣传消防安全知识，督促住户清理楼道杂物，现已清理完毕并拍照留存。",
         "已劝导住户将电动车移至小区集中充电点，并张贴禁止楼道充电提示。",
         "协调物业和社区志愿者清理楼道废品两车，并与住户签订楼道管理承诺书。"),
        indoor=True,
    ),
    Topic(
        "environment.garbage", "complaint", (9, 1, 0), "any", 9,
        ("{place}垃圾清运不及时", "{place}垃圾堆放无人清理", "{place}垃圾箱满溢"),
        ("{place}的垃圾箱已经{days}天没人清运了，垃圾堆满溢出来，气味很大，还招苍蝇，"
         "请尽快安排清运。",
         "反映{place}有人乱倒建筑垃圾，堆了一大堆，占了半条路，希望有关部门处理。",
         "{place}垃圾站周边脏乱差，清运车来得不准时，居民只能把垃圾放在地上。"),
        ("已协调环卫部门当日清运，并调整该点位清运频次为每日两次。",
         "建筑垃圾已清运完毕，已在该处张贴禁止倾倒告示并纳入网格巡查重点。",
         "网格员联系保洁公司清理了垃圾站周边环境，清运车已按固定时间到达。"),
    ),
    Topic(
        "municipal.road", "complaint", (8, 2, 0), "any", 7,
        ("{place}路面坑洼", "{place}道路破损积水", "{place}人行道砖松动"),
        ("{place}路面坑洼不平，有好几个大坑，下雨后积满水，骑车的人已经摔倒过好几次。",
         "反映{place}的道路破损严重，车辆经过颠簸得厉害，晚上看不清很危险。",
         "{place}人行道地砖松动翘起，一踩就溅水，老人走路容易绊倒。"),
        ("已上报市政养护部门，对坑洼路面进行了临时填补，待天气转暖后统一翻修。",
         "养护单位已对破损路面进行沥青修补，网格员现场复查路面平整。",
         "已协调对松动地砖重新铺设，现场施工已完成。"),
    ),
    Topic(
        "planning.illegal_building", "report", (10, 0, 0), "any", 4,
        ("{place}私搭乱建", "{place}一楼住户违建扩建", "{place}楼顶搭建彩钢房"),
        ("{place}有住户在一楼私自扩建，把院子用彩钢板围起来盖了房子，影响邻居采光和通行。",
         "举报{place}有人在楼顶搭建彩钢房，担心楼板承重有问题，请有关部门查处。",
         "反映{place}有人在公共绿地上搭了棚子堆放杂物，已经搭了好几天了。"),
        ("经核实确为未经审批的违法建设，已移交街道综合执法队依法下达限期拆除通知书。",
         "网格员会同执法人员到场，当事人已自行拆除彩钢房，现场已恢复原状。",
         "已督促当事人清理公共绿地上的棚子和杂物，绿地已恢复。"),
    ),
    Topic(
        "utilities.outage", "help", (3, 6, 1), "any", 7,
        ("{place}停水未提前通知", "{place}突然停电", "{place}自来水水质发黄"),
        ("{place}从今天早上{hour}点开始停水，事先没有接到任何通知，家里老人孩子没法做饭，"
         "请问什么时候能来水？",
         "反映{place}整栋楼突然停电，已经{n}个多小时了，冰箱里的东西都要坏了，"
         "请帮忙联系供电部门。",
         "{place}自来水打开是黄色的，放了很久也不清，不敢喝，请有关部门检测一下。"),
        ("经联系供水公司，停水系主管线抢修所致，已于当日下午恢复供水，网格员已在单元门张贴"
         "后续停水通知。",
         "已联系供电公司抢修，为楼内电缆老化短路，更换后恢复供电。",
         "供水公司已到场冲洗管网并取样检测，水质已恢复正常，已告知居民检测结果。"),
        indoor=True,
    ),
    Topic(
        "community.pets", "complaint", (10, 0, 0), "urban", 4,
        ("{place}犬只扰民", "{place}遛狗不拴绳", "{place}流浪犬聚集"),
        ("{place}有住户养的狗每天夜里叫个不停，已经好几个月了，沟通过也没用。",
         "反映{place}经常有人遛狗不拴绳，大狗追着孩子跑，狗粪也不清理。",
         "{place}附近有好几条流浪狗，晚上成群结队，已经有居民被追咬，请尽快处理。"),
        ("网格员与养犬户沟通，对方承诺夜间将犬只关在室内，并已办理养犬登记。",
         "已在小区开展文明养犬宣传，劝导遛狗拴绳、清理粪便，物业加强巡查。",
         "已联系相关部门对流浪犬进行收容，共收容{n}只。"),
    ),
    Topic(
        "fire.access_blocked", "report", (5, 5, 0), "urban", 5,
        ("{place}消防通道被占用", "{place}私家车堵塞消防通道", "{place}消防通道堆放杂物"),
        ("{place}小区消防通道长期被私家车占用，晚上停得满满的，万一着火消防车根本进不来。",
         "反映{place}消防通道上有人用地锁占车位，还堆了不少杂物，请相关部门清理。",
         "{place}消防通道被一辆长期不动的僵尸车堵着，已经半年多了。"),
        ("已联系物业在消防通道施划禁停标线并设置隔离桩，占道车辆已联系车主挪走。",
         "网格员会同物业拆除违规地锁{n}个，清理杂物，消防通道已畅通。",
         "已联系交警部门对僵尸车张贴告知单，车主已将车辆移走。"),
    ),
    Topic(
        "building.elevator", "help", (3, 6, 1), "urban", 4,
        ("{place}电梯故障", "{place}电梯经常停运", "{place}电梯困人"),
        ("{place}电梯坏了{days}天了，楼上住着很多老人，上下楼非常困难，物业说等配件。",
         "反映{place}电梯经常突然停运，上个月还困过人，担心安全问题。",
         "{place}电梯运行时有异响，还会突然下坠一下，请尽快派人检修。"),
        ("已督促物业联系维保单位更换故障部件，电梯已恢复运行，并经检验合格。",
         "网格员协调维保单位全面检修电梯，已更换钢丝绳和门机，运行正常。",
         "经特种设备检验机构检查，电梯已停用大修，物业承诺一周内完成。"),
        indoor=True,
    ),
    Topic(
        "environment.straw_burning", "report", (6, 4, 0), "rural", 5,
        ("{place}焚烧秸秆", "{place}有人露天焚烧垃圾", "{place}烟雾很大"),
        ("{place}附近有人在地里焚烧秸秆，浓烟很大，呛得人喘不过气，还影响公路上的车辆通行。",
         "反映{place}有人露天焚烧塑料垃圾，黑烟和气味很大。",
         "{place}每天傍晚都有烧东西的烟，不知道是谁家在烧。"),
        ("网格员到场扑灭余火，对当事人进行了秸秆禁烧政策宣传，并纳入重点巡查。",
         "已制止焚烧行为并清理现场，对村民进行了宣传教育。",
         "经巡查为农户焚烧玉米秸秆，已劝阻并告知秸秆离田还田补贴政策。"),
    ),
    Topic(
        "rural.road", "help", (9, 1, 0), "rural", 5,
        ("{place}通村路破损", "{place}村路积水难行", "{place}边沟堵塞"),
        ("{place}的通村路坑坑洼洼，下雨后全是泥，农用车和校车都不好走，希望能修一下。",
         "反映{place}道路边沟被垃圾和杂草堵住，一下雨路上就积水。",
         "{place}的桥头路面塌了一块，晚上过车很危险。"),
        ("已上报镇交通站，对破损路段进行碎石垫铺，村里组织人员清理了积水。",
         "网格员组织村民清理边沟{n}00米，排水已恢复通畅。",
         "已在塌陷处设置警示标志，镇里已安排维修，预计一周内完成。"),
    ),
    Topic(
        "rural.water", "help", (6, 4, 0), "rural", 4,
        ("{place}自来水水压低", "{place}饮水井故障", "{place}停水多日"),
        ("{place}自来水水压太低，一到做饭的时候就没水，已经{days}天了。",
         "反映{place}村里的饮水井水泵坏了，全组{n}0多户吃水困难。",
         "{place}已经停水好几天，村里说是管子冻了，一直没人来修。"),
        ("已协调镇水利站检修加压泵，水压恢复正常。",
         "水利站已更换水泵，恢复供水，网格员逐户确认。",
         "已组织人员对冻裂管道进行更换并做保温处理，供水恢复。"),
        indoor=True,
    ),
    Topic(
        "policy.social_security", "consultation", (10, 0, 0), "any", 5,
        ("咨询城乡居民医保缴费", "咨询养老保险认证", "咨询低保申请条件"),
        ("来电人住{place}，咨询明年城乡居民医疗保险的缴费时间、标准和缴费方式。",
         "来电人为{place}居民，父亲今年{age}岁，咨询养老金领取资格认证怎么办理。",
         "来电人住{place}，家庭困难，咨询低保申请需要什么条件和材料。"),
        ("已电话答复来电人：缴费期为每年9月至12月，可通过手机、银行或社区代收点缴纳，"
         "来电人表示清楚。",
         "已告知来电人可通过手机APP人脸识别认证，行动不便的可由社区上门协助。",
         "已向来电人解释低保申请条件，并告知到社区提交申请材料，社区将入户调查。"),
        desk=True, indoor=True,
    ),
    Topic(
        "community.suggestion", "suggestion", (10, 0, 0), "urban", 3,
        ("建议{place}增设健身器材", "建议{place}增设公交站点", "建议{place}增加停车位"),
        ("来电人建议在{place}一带的空地增设一些健身器材，方便老年人锻炼。",
         "建议在{place}一带增设公交站点，现在最近的站也要走二十多分钟。",
         "{place}停车难，建议利用闲置空地规划一些停车位。"),
        ("已将建议转交相关部门研究，社区已将该空地纳入明年改造计划，已向来电人反馈。",
         "已向公交公司转达建议，公交公司表示将进行客流调研后答复。",
         "已协调物业对闲置空地进行平整，新增停车位{n}0余个。"),
        desk=True,
    ),
)

URBAN_SPOTS = (
    "{n}号楼{u}单元", "{n}号楼楼下", "{n}号楼东侧", "小区南门", "小区东门", "小区北侧停车场",
    "卫生服务站门口", "菜市场门口", "幼儿园门前", "公交站旁", "{n}号楼与{m}号楼之间",
    "党群服务中心旁", "沿街商铺前",
)
URBAN_HOMES = ("{n}号楼{u}单元", "{n}号楼", "{n}号楼{u}单元{f}楼", "{n}号楼{u}单元")
RURAL_HOMES = ("{n}组", "{n}组{m}号", "村东头", "村西头")
RURAL_SPOTS = (
    "{n}组", "村东头", "村西头", "村委会门前", "村小学门口", "通村路{n}公里处", "村南大桥旁",
    "{n}组{m}号", "村卫生室旁", "村文化广场", "村北水塘边",
)

OPENINGS = ("", "", "", "来电人反映：", "市民来电：", "网民留言：")
CLOSINGS = ("", "", "希望尽快解决。", "请相关部门尽快处理。", "来电人要求回复处理结果。",
            "来电人情绪较急，请尽快处理。")
DESK_CLOSINGS = ("", "", "来电人要求回复。")

SURNAMES = ("王李张刘陈杨赵黄周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余"
            "于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏付方白邹孟熊秦邱江尹薛闫段雷侯龙"
            "史陶贺顾毛郝龚邵万钱严武戴孔汤关佟")
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀兰", "霞", "平", "刚", "桂英", "玉兰", "建国", "建华", "海燕", "丹", "红",
         "玉梅", "淑珍", "凤琴", "志刚", "晓东", "宇", "浩然", "子涵", "欣怡", "佳琪", "春梅",
         "立新", "长林", "德胜", "秀珍", "桂芝", "淑华", "雪")


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def caller_name(rng: random.Random) -> str:
    """What a caller gives: a full name, or often just 'Ms / Mr surname'."""
    if rng.random() < 0.35:
        return rng.choice(SURNAMES) + rng.choice(("女士", "先生", "大爷", "阿姨"))
    return person_name(rng)


def phone_number(rng: random.Random) -> str:
    """A well-formed mainland mobile number (made up)."""
    return rng.choice(("13", "15", "17", "18", "19")) + str(rng.randint(0, 9)) + \
        f"{rng.randint(0, 99_999_999):08d}"


def spot(rng: random.Random, rural: bool, indoor: bool = False) -> str:
    """Where in the village: a building or household for ``indoor`` topics, else outdoors."""
    homes, spots = (RURAL_HOMES, RURAL_SPOTS) if rural else (URBAN_HOMES, URBAN_SPOTS)
    template = rng.choice(homes if indoor else spots)
    n = rng.randint(1, 12 if rural else 36)
    return template.format(n=n, u=rng.randint(1, 6), m=n + rng.randint(1, 4),
                           f=rng.randint(2, 18))


def _details(rng: random.Random) -> dict[str, Any]:
    """The numbers one ticket's texts share (the caller's "3 lamps" are the worker's too)."""
    return {"days": rng.choice(("两", "三", "四", "五", "七", "十")), "hour": rng.randint(5, 8),
            "late": rng.choice(("十", "十一", "十二")), "n": rng.randint(2, 6),
            "temp": rng.randint(12, 16), "age": rng.randint(60, 82)}


@dataclass(frozen=True)
class Composed:
    title: str
    content: str
    reply: str


def compose(topic: Topic, rng: random.Random, place: str, short_place: str) -> Composed:
    """A title, a caller's account and the worker's eventual answer for one ticket."""
    variant = rng.randrange(len(topic.contents))
    details = _details(rng)
    title = topic.titles[variant % len(topic.titles)].format(place=short_place, **details)
    content = topic.contents[variant].format(place=place, **details)
    if not content.startswith(("反映", "来电人", "建议", "举报")):
        content = rng.choice(OPENINGS) + content
    if not any(word in content[-14:] for word in ("请", "希望", "建议")):
        content += rng.choice(DESK_CLOSINGS if topic.desk else CLOSINGS)
    reply = topic.replies[variant % len(topic.replies)].format(place=place, **details)
    return Composed(title[:200], content, reply)
