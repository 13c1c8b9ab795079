"""Pluggy's category taxonomy (what the household's rows are categorized with), GET /categories and
GET /categories/{id}.
"""

from __future__ import annotations

from typing import Any

from finance.providers.pluggy.sandbox.base import PluggyBase, _Call, _not_found, _page

PLUGGY_CATEGORIES: dict[str, tuple[str, str]] = {
    "01000000": ("Income", "Renda"),
    "01010000": ("Salary", "Salário"),
    "01020000": ("Retirement", "Aposentadoria"),
    "01030000": ("Entrepreneurial activities", "Atividades empresariais"),
    "01040000": ("Government aid", "Auxílio governamental"),
    "01050000": ("Non-recurring income", "Renda não recorrente"),
    "02000000": ("Loans and financing", "Empréstimos e financiamentos"),
    "02010000": ("Late payment and overdraft costs", "Multas, juros e cheque especial"),
    "02020000": ("Interests charged", "Juros cobrados"),
    "02030000": ("Financing", "Financiamento"),
    "03000000": ("Investments", "Investimentos"),
    "03010000": ("Automatic investment", "Investimento automático"),
    "03060000": ("Proceeds interests and dividends", "Rendimentos, juros e dividendos"),
    "04000000": ("Same person transfer", "Transferência mesma titularidade"),
    "04010000": ("Same person transfer - Cash", "Transferência mesma titularidade - Dinheiro"),
    "04020000": ("Same person transfer - PIX", "Transferência mesma titularidade - PIX"),
    "04030000": ("Same person transfer - TED", "Transferência mesma titularidade - TED"),
    "05000000": ("Transfers", "Transferências"),
    "05010000": ("Transfer - Bank slip", "Transferência - Boleto bancário"),
    "05020000": ("Transfer - Cash", "Transferência - Dinheiro"),
    "05030000": ("Transfer - Check", "Transferência - Cheque"),
    "05040000": ("Transfer - DOC", "Transferência - DOC"),
    "05050000": ("Transfer - Foreign exchange", "Transferência - Câmbio"),
    "05060000": ("Transfer - Internal", "Transferência - Mesma instituição"),
    "05070000": ("Transfer - PIX", "Transferência - PIX"),
    "05080000": ("Transfer - TED", "Transferência - TED"),
    "05090000": ("Third party transfers", "Transferências para terceiros"),
    "05100000": ("Credit card payment", "Pagamento de cartão de crédito"),
    "06000000": ("Legal obligations", "Obrigações legais"),
    "07000000": ("Services", "Serviços"),
    "07010000": ("Telecommunications", "Telecomunicações"),
    "07010001": ("Internet", "Internet"),
    "07010002": ("Mobile", "Celular"),
    "07010003": ("TV", "TV"),
    "07020000": ("Education", "Educação"),
    "07030000": ("Wellness and fitness", "Bem-estar e academia"),
    "07040000": ("Tickets", "Ingressos"),
    "08000000": ("Shopping", "Compras"),
    "08010000": ("Online shopping", "Compras online"),
    "08020000": ("Electronics", "Eletrônicos"),
    "08030000": ("Pet supplies and vet", "Pet shop e veterinário"),
    "08040000": ("Clothing", "Vestuário"),
    "08050000": ("Kids and toys", "Crianças e brinquedos"),
    "08060000": ("Bookstore", "Livraria"),
    "08070000": ("Sports goods", "Artigos esportivos"),
    "08080000": ("Office supplies", "Papelaria"),
    "08090000": ("Cashback", "Cashback"),
    "09000000": ("Digital services", "Serviços digitais"),
    "09010000": ("Gaming", "Jogos"),
    "09020000": ("Video streaming", "Streaming de vídeo"),
    "09030000": ("Music streaming", "Streaming de música"),
    "10000000": ("Groceries", "Supermercado"),
    "11000000": ("Food and drinks", "Alimentação"),
    "11010000": ("Eating out", "Restaurantes"),
    "11020000": ("Food delivery", "Delivery de comida"),
    "12000000": ("Travel", "Viagens"),
    "12010000": ("Airport and airlines", "Aeroportos e companhias aéreas"),
    "12020000": ("Accomodation", "Hospedagem"),
    "12030000": ("Mileage programs", "Programas de milhagem"),
    "12040000": ("Bus tickets", "Passagens de ônibus"),
    "13000000": ("Donations", "Doações"),
    "14000000": ("Gambling", "Apostas"),
    "15000000": ("Taxes", "Impostos"),
    "15010000": ("Income taxes", "Imposto de renda"),
    "15020000": ("Tax on financial operations", "IOF"),
    "15030000": ("Vehicle tax", "IPVA"),
    "16000000": ("Bank fees", "Tarifas bancárias"),
    "16010000": ("Account fees", "Tarifas de conta"),
    "16020000": ("Wire transfer fees", "Tarifas de transferência"),
    "16030000": ("Credit card fees", "Tarifas de cartão de crédito"),
    "17000000": ("Housing", "Moradia"),
    "17010000": ("Rent", "Aluguel"),
    "17020000": ("Utilities", "Contas de consumo"),
    "17020001": ("Water", "Água"),
    "17020002": ("Electricity", "Energia elétrica"),
    "17020003": ("Gas", "Gás"),
    "17030000": ("Houseware", "Utilidades domésticas"),
    "17040000": ("Urban land and building tax", "IPTU"),
    "18000000": ("Healthcare", "Saúde"),
    "18010000": ("Dentist", "Dentista"),
    "18020000": ("Pharmacy", "Farmácia"),
    "18030000": ("Optometry", "Ótica"),
    "18040000": ("Hospital clinics and labs", "Hospitais, clínicas e laboratórios"),
    "19000000": ("Transportation", "Transporte"),
    "19010000": ("Taxi and ride-hailing", "Táxi e transporte por aplicativo"),
    "19020000": ("Public transportation", "Transporte público"),
    "19030000": ("Car rental", "Aluguel de veículos"),
    "19040000": ("Bicycle", "Bicicleta"),
    "19050000": ("Automotive", "Automotivo"),
    "19050001": ("Gas stations", "Postos de combustível"),
    "19050002": ("Parking", "Estacionamento"),
    "19050003": ("Tolls and in vehicle payment", "Pedágios e pagamentos no veículo"),
    "20000000": ("Insurance", "Seguros"),
    "20010000": ("Life insurance", "Seguro de vida"),
    "20020000": ("Home insurance", "Seguro residencial"),
    "20030000": ("Health insurance", "Plano de saúde"),
    "20040000": ("Vehicle insurance", "Seguro de veículo"),
    "21000000": ("Leisure", "Lazer"),
    "21010000": ("Sports", "Esportes"),
    "21020000": ("Cinema, theater and concerts", "Cinema, teatro e shows"),
    "99999999": ("Unknown", "Desconhecido"),
}
"""Pluggy's category taxonomy: id → (English description, Portuguese description)."""


def category_parent(category_id: str) -> str | None:
    """The top-level category of an 8-digit id (first two digits, then zeros); None for top-level ones and Unknown."""
    parent = category_id[:2] + "000000"
    return parent if parent != category_id and parent in PLUGGY_CATEGORIES else None


class CategoriesMixin(PluggyBase):
    """The /categories endpoints."""

    @staticmethod
    def _category_json(category_id: str) -> dict[str, Any]:
        description, translated = PLUGGY_CATEGORIES[category_id]
        category: dict[str, Any] = {"id": category_id, "description": description,
                                    "descriptionTranslated": translated}
        parent = category_parent(category_id)
        if parent is not None:
            category.update(parentId=parent, parentDescription=PLUGGY_CATEGORIES[parent][0])
        return category

    def _list_categories(self, call: _Call) -> tuple[int, Any]:
        parent = call.params.get("parentId")
        results = [self._category_json(c) for c in PLUGGY_CATEGORIES
                   if parent is None or category_parent(c) == parent]
        return 200, _page(results)

    def _get_category(self, call: _Call) -> tuple[int, Any]:
        if call.match["id"] not in PLUGGY_CATEGORIES:
            raise _not_found("CATEGORY", "category not found")
        return 200, self._category_json(call.match["id"])
